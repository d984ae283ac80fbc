import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, MemoryAdapterStore, PeftModel, UnsupportedLayerError } from '@tfjs-peft/core';
import {
  checkVariableGradients,
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraConv2D } from './index';

/** A small CNN: two 3×3 convolutions (one strided), global pooling, a Dense head. */
function makeCnn(): tfl.LayersModel {
  const seed = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  return tfl.sequential({
    layers: [
      tfl.layers.conv2d({
        name: 'conv1',
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        inputShape: [6, 6, 3],
        kernelInitializer: seed(1),
      }),
      tfl.layers.conv2d({
        name: 'conv2',
        filters: 5,
        kernelSize: 3,
        strides: 2,
        padding: 'valid',
        activation: 'tanh',
        kernelInitializer: seed(2),
      }),
      tfl.layers.globalAveragePooling2d({ name: 'pool' }),
      tfl.layers.dense({ name: 'head', units: 2, kernelInitializer: seed(3) }),
    ],
  });
}

const images = () =>
  tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 2 * 6 * 6 * 3, 1, 'float32'), [2, 6, 6, 3])));
const predict = (m: tfl.LayersModel, x: tf.Tensor) => m.predict(x) as tf.Tensor;

describeEachBackend('LoRA on Conv2D layers', () => {
  it('a new adapter is a no-op; merged equals unmerged; unmerge is bit-exact, 100 times over', async () => {
    const base = makeCnn();
    const original = await snapshotWeights(base);
    const x = images();
    const baseOut = predict(base, x);
    const fresh = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['conv1', 'conv2'] }));
    expect(fresh.model.getLayer('conv2')).toBeInstanceOf(LoraConv2D);
    const freshOut = predict(fresh.model, x);
    await expectTensorsClose(freshOut, baseOut, 1e-6);
    fresh.unload();
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['conv1', 'conv2'], initLoraWeights: false }),
    );
    const unmerged = predict(peft.model, x);
    await peft.mergeAdapter();
    const merged = predict(peft.model, x);
    await expectTensorsClose(merged, unmerged, 1e-5);
    for (let i = 0; i < 100; i++) {
      peft.unmergeAdapter();
      await peft.mergeAdapter();
    }
    peft.unmergeAdapter();
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    tf.dispose([x, baseOut, freshOut, unmerged, merged]);
    peft.unload();
    base.dispose();
  });

  it('saves A as [r, in, kh, kw] and B as [out, r, 1, 1] and loads them back', async () => {
    const base = makeCnn();
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 3, targetModules: ['conv2'], initLoraWeights: false }),
    );
    const x = images();
    const saved = predict(peft.model, x);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const { parseSafetensors } = await import('@tfjs-peft/core');
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    expect(file.tensors.get('base_model.model.conv2.lora_A.weight')!.shape).toEqual([3, 4, 3, 3]);
    expect(file.tensors.get('base_model.model.conv2.lora_B.weight')!.shape).toEqual([5, 3, 1, 1]);
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(base, store);
    const out = predict(reloaded.model, x);
    await expectTensorsClose(out, saved, 1e-6);
    tf.dispose([x, saved, out]);
    reloaded.unload();
    base.dispose();
  });

  it('gradients of A and B match central finite differences; training leaves the kernels untouched', async () => {
    const base = makeCnn();
    const original = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 1, targetModules: ['conv2'], initLoraWeights: false }),
    );
    const x = images();
    const loss = () => tf.tidy(() => tf.sum(tf.square(predict(peft.model, x))) as tf.Scalar);
    // Every other element keeps the test small on slow backends.
    await checkVariableGradients(loss, peft.trainableVariables, {
      epsilon: 1e-2,
      tolerance: 1e-2,
      stride: 2,
    });
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    x.dispose();
    peft.unload();
    base.dispose();
  });

  it("bias 'loraOnly': the convolution's bias trains (finite differences), saved as base_layer.bias, given back on unload", async () => {
    const base = makeCnn();
    const original = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 1, targetModules: ['conv2'], bias: 'loraOnly', initLoraWeights: false }),
    );
    expect(peft.model.trainableWeights.map((w) => w.originalName).sort()).toEqual([
      'conv2/bias',
      'conv2/lora_A_default',
      'conv2/lora_B_default',
    ]);
    const x = images();
    const loss = () => tf.tidy(() => tf.sum(tf.square(predict(peft.model, x))) as tf.Scalar);
    await checkVariableGradients(loss, peft.trainableVariables, {
      epsilon: 1e-2,
      tolerance: 1e-2,
      stride: 2,
    });
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const { parseSafetensors } = await import('@tfjs-peft/core');
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    expect(Object.fromEntries([...file.tensors].map(([k, t]) => [k, t.shape]))).toEqual({
      'base_model.model.conv2.base_layer.bias': [5],
      'base_model.model.conv2.lora_A.weight': [1, 4, 3, 3],
      'base_model.model.conv2.lora_B.weight': [5, 1, 1, 1],
    });
    x.dispose();
    peft.unload();
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    base.dispose();
  });

  it('refuses DoRA on a convolution, naming the layer', () => {
    const base = makeCnn();
    expect(() => getPeftModel(base, new LoraConfig({ targetModules: ['conv1'], useDora: true }))).toThrow(
      UnsupportedLayerError,
    );
    expect(() => getPeftModel(base, new LoraConfig({ targetModules: ['conv1'], useDora: true }))).toThrow(
      /conv1/,
    );
    expect(base.trainableWeights.length).toBe(base.weights.length);
    base.dispose();
  });
});
