// enableGradientCheckpointing: on a two-block encoder at a long sequence, a training step's
// gradients equal those without it (≤ 1e-5 relative, every trainable weight), the tf.profile peak is
// lower, no tensor is left behind; the attention cores are found and switched back; the setting
// survives serialisation only when on.
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { PeftError, variableGradsReleasingEarly } from '@tfjs-peft/core';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { buildTransformerEncoder } from './encoder/build-transformer-encoder';
import type { TransformerEncoderConfig } from './encoder/transformer-encoder-config';
import { enableGradientCheckpointing } from './gradient-checkpointing';
import { MultiHeadAttentionCore } from './layers/multi-head-attention-core';

const LENGTH = 96;

/** Narrow and long: attention's [batch, heads, length, length] tensors dominate a step's memory. */
const longConfig: TransformerEncoderConfig = {
  vocabSize: 13,
  embeddingSize: 8,
  positionEncoding: 'sinusoidal',
  maxPositions: LENGTH,
  blocks: [
    { hiddenSize: 8, numHeads: 2, intermediateSize: 16 },
    { hiddenSize: 8, numHeads: 2, intermediateSize: 16 },
  ],
  normalization: 'pre',
  layerNormEpsilon: 1e-6,
  pooling: 'mean',
};

function seeded(model: LayersModel): void {
  let k = 0;
  for (const weight of model.weights) {
    const size = weight.shape.reduce((a, b) => (a as number) * (b as number), 1) as number;
    const value = tf.tensor(
      Float32Array.from({ length: size }, () => 0.4 * Math.sin(++k * 0.7)),
      weight.shape as number[],
    );
    weight.write(value);
    value.dispose();
  }
}

describeEachBackend('enableGradientCheckpointing', () => {
  let model: LayersModel;
  let ids: tf.Tensor;
  let mask: tf.Tensor;

  beforeAll(() => {
    model = buildTransformerEncoder(longConfig, 'long');
    seeded(model);
    ids = tf.tidy(() => tf.reshape(tf.cast(tf.mod(tf.range(0, 2 * LENGTH, 1), 13), 'int32'), [2, LENGTH]));
    mask = tf.tidy(() => tf.concat([tf.ones([2, LENGTH - 5]), tf.zeros([2, 5])], 1));
  });

  afterAll(() => {
    enableGradientCheckpointing(model, false);
    tf.dispose([ids, mask]);
    model.dispose();
  });

  const loss = () =>
    tf.tidy(() => tf.sum(tf.square(model.apply([ids, mask], { training: true }) as tf.Tensor)) as tf.Scalar);
  const variables = () => model.trainableWeights.map((w) => w.read() as tf.Variable);

  it('finds both attention cores and switches them on and off', () => {
    expect(enableGradientCheckpointing(model)).toBe(2);
    const cores = model.layers.filter(
      (l): l is MultiHeadAttentionCore => l instanceof MultiHeadAttentionCore,
    );
    expect(cores.map((c) => c.recompute)).toEqual([true, true]);
    expect(cores[0]!.getConfig().recompute).toBe(true);
    expect(enableGradientCheckpointing(model, false)).toBe(2);
    expect(cores.map((c) => c.recompute)).toEqual([false, false]);
    expect('recompute' in cores[0]!.getConfig()).toBe(false);
  });

  it('refuses what is not a model, with a typed error', () => {
    for (const bad of [null, {}, 'model']) {
      expect(() => enableGradientCheckpointing(bad as unknown as LayersModel)).toThrow(PeftError);
      expect(() => enableGradientCheckpointing(bad as unknown as LayersModel)).toThrow(
        /expected a tf.LayersModel/,
      );
    }
  });

  it('gradients equal those without checkpointing (≤ 1e-5 relative), with tf.variableGrads and released early', async () => {
    const plain = tf.variableGrads(loss, variables());
    enableGradientCheckpointing(model);
    const ours = tf.variableGrads(loss, variables());
    const early = variableGradsReleasingEarly(loss, variables());
    enableGradientCheckpointing(model, false);
    try {
      await expectTensorsClose(ours.value, plain.value, 1e-5 * Math.abs((await plain.value.data())[0]!));
      for (const name of Object.keys(plain.grads)) {
        const scale = Math.max(1e-12, ...Array.from(await plain.grads[name]!.data(), Math.abs));
        await expectTensorsClose(ours.grads[name]!, plain.grads[name]!, 1e-5 * scale);
        await expectTensorsClose(early.grads[name]!, plain.grads[name]!, 1e-5 * scale);
      }
    } finally {
      tf.dispose([plain.value, ours.value, early.value, plain.grads, ours.grads, early.grads]);
    }
  });

  it('a step peaks lower with checkpointing; no tensor left behind', async () => {
    const peak = async () =>
      (
        await tf.profile(() => {
          const { value, grads } = variableGradsReleasingEarly(loss, variables());
          tf.dispose([value, grads]);
        })
      ).peakBytes;
    const before = tf.memory().numTensors;
    const plainPeak = await peak();
    enableGradientCheckpointing(model);
    const checkpointedPeak = await peak();
    enableGradientCheckpointing(model, false);
    expect(tf.memory().numTensors).toBe(before);
    expect(checkpointedPeak).toBeLessThan(plainPeak);
  });
});
