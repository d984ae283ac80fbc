// Issue 9, item 2: frozen weights cost no gradient. A LoRA step's backward pass, profiled with
// tf.profile on a tiny USE-lite-shaped encoder (buildTransformerEncoder + classifier head), runs
// no matMul that produces the gradient of a frozen Dense kernel, and nothing below the lowest
// trainable weight (the frozen embedding table gets no gradient). A control with plain autodiff on
// the same model shows the detector does see kernel gradients when they are computed.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel } from '@tfjs-peft/core';
import { LoraConfig } from '@tfjs-peft/lora';
import { describeEachBackend } from '@tfjs-peft/test-utils';
import { buildTinyClassifier, TINY_BATCH, TINY_VOCAB as VOCAB, tinyInputs } from './tiny-encoder';

// The tiny encoder's sizes make no activation or input-gradient shape equal a kernel shape (see
// tiny-encoder.ts): a matMul whose output has a frozen kernel's shape is that kernel's gradient.
const NUM_CLASSES = 3;

function buildClassifier(): { model: tfl.LayersModel } {
  return { model: buildTinyClassifier(NUM_CLASSES) };
}

function batch() {
  const { ids, mask } = tinyInputs();
  const classes = Array.from({ length: TINY_BATCH }, (_, i) => i % NUM_CLASSES);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(classes, 'int32'), NUM_CLASSES));
  return { ids, mask, labels };
}

/** Kernel names of the matrix products (tf.matMul, fused matMul) across backends. */
const isMatMul = (name: string) => /MatMul/i.test(name);

/** Runs one loss + gradient computation (a training step without the update) under tf.profile. */
async function profileGradients(model: tfl.LayersModel, variables: tf.Variable[]) {
  const { ids, mask, labels } = batch();
  const profile = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => {
      const probs = model.apply([ids, mask], { training: true }) as tf.Tensor;
      return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.log(tf.add(probs, 1e-7))), -1))) as tf.Scalar;
    }, variables);
    tf.dispose([value, ...Object.values(grads)]);
  });
  tf.dispose([ids, mask, labels]);
  // Leading 1s dropped: tfjs's batched matMul returns a kernel gradient as [1, in, out].
  const squeezed = (shape: number[]) => String(shape.slice(shape.findIndex((d) => d !== 1)));
  return profile.kernels.map((k) => ({ name: k.name, shape: squeezed(k.outputShapes[0] ?? []) }));
}

/** The Dense kernels of the encoder (everything but the classifier head), by shape. */
function encoderKernelShapes(model: tfl.LayersModel): Set<string> {
  const shapes = new Set<string>();
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'Dense' || layer.name === 'classifier') continue;
    shapes.add(String(layer.getWeights()[0].shape));
  }
  return shapes;
}

describeEachBackend('frozen weights cost no gradient (LoRA step on a tiny USE-lite-shaped encoder)', () => {
  it('control: plain autodiff of full fine-tuning computes every kernel gradient, which the detector sees', async () => {
    const { model } = buildClassifier();
    const kernelShapes = encoderKernelShapes(model);
    expect(kernelShapes.size).toBeGreaterThanOrEqual(4);
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const kernels = await profileGradients(model, variables);
    const seen = new Set(
      kernels.filter((k) => isMatMul(k.name) && kernelShapes.has(k.shape)).map((k) => k.shape),
    );
    expect([...seen].sort()).toEqual([...kernelShapes].sort());
    // The embedding table [VOCAB, 4] gets a gradient in full fine-tuning.
    expect(kernels.some((k) => k.shape === `${VOCAB},4`)).toBe(true);
    model.dispose(); // releases the encoder's layers too (the head model is their last holder)
  });

  it('LoRA r2 on query/value (+ classifier in modulesToSave): no matMul produces a frozen kernel gradient, no gradient below the lowest adapter', async () => {
    const { model: base } = buildClassifier();
    const kernelShapes = encoderKernelShapes(base);
    const peft = getPeftModel(
      base,
      new LoraConfig({
        r: 2,
        loraAlpha: 4,
        targetModules: ['query', 'value'],
        modulesToSave: ['classifier'],
      }),
    );
    // Non-zero B so that every LoRA path carries a gradient, as after a first update.
    for (const v of peft.trainableVariables)
      if (v.name.includes('lora_B')) tf.tidy(() => v.assign(tf.fill(v.shape, 0.1)));
    const kernels = await profileGradients(peft.model, peft.trainableVariables);
    const frozenKernelGradients = kernels.filter((k) => isMatMul(k.name) && kernelShapes.has(k.shape));
    expect(frozenKernelGradients).toEqual([]);
    // Below the lowest trainable weight (block 0's query/value adapters) nothing is differentiated:
    // no kernel produces a tensor of the frozen embedding table's shape.
    expect(kernels.filter((k) => k.shape === `${VOCAB},4`)).toEqual([]);
    // The adapters themselves do get their gradients (the profile is not vacuous).
    const loraShapes = new Set(
      peft.trainableVariables.filter((v) => v.name.includes('lora_')).map((v) => String(v.shape)),
    );
    expect(kernels.some((k) => isMatMul(k.name) && loraShapes.has(k.shape))).toBe(true);
    peft.model.dispose();
    base.dispose();
  });
});
