import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { withClassifierHead } from '../classifier-head';
import { buildTransformerEncoder } from './build-transformer-encoder';
import { layerNames } from './layer-names';
import type { TransformerEncoderConfig } from './transformer-encoder-config';

/** A USE-lite-shaped encoder at toy size: a widening first block, pre-norm, mean pooling. */
const tinyConfig: TransformerEncoderConfig = {
  vocabSize: 11,
  embeddingSize: 4,
  positionEncoding: 'sinusoidal',
  maxPositions: 16,
  tokenScale: 2,
  blocks: [
    { hiddenSize: 6, numHeads: 2, attentionSize: 4, intermediateSize: 8 },
    { hiddenSize: 6, numHeads: 3, intermediateSize: 8 },
  ],
  normalization: 'pre',
  layerNormEpsilon: 1e-6,
  pooling: 'mean',
  pooler: { units: 6, activation: 'tanh' },
  l2Normalize: true,
};

function seeded(model: LayersModel): void {
  // Deterministic, non-trivial weights (biases and layer-norm parameters included).
  let k = 0;
  for (const weight of model.weights) {
    const size = weight.shape.reduce((a, b) => (a as number) * (b as number), 1) as number;
    const data = Float32Array.from({ length: size }, () => 0.5 * Math.sin(++k * 0.7));
    const value = tf.tensor(data, weight.shape as number[]);
    weight.write(value);
    value.dispose();
  }
}

describeEachBackend('buildTransformerEncoder', () => {
  let model: LayersModel;

  beforeAll(() => {
    model = buildTransformerEncoder(tinyConfig, 'tiny');
    seeded(model);
  });

  afterAll(() => model.dispose());

  it('names the projections like PEFT targets, as plain Dense layers', () => {
    for (const i of [0, 1]) {
      const names = layerNames.block(i);
      for (const name of [
        names.query,
        names.key,
        names.value,
        names.attentionOutput,
        names.intermediate,
        names.output,
      ]) {
        const layer = model.getLayer(name);
        expect(layer.getClassName()).toBe('Dense');
        expect(layer.getConfig().activation).toBe('linear');
      }
    }
    expect(model.getLayer('encoder/layer_0/attention/query').name).toBe('encoder/layer_0/attention/query');
    expect(model.getLayer(layerNames.block(0).residualProjection).getClassName()).toBe('Dense');
    expect(() => model.getLayer(layerNames.block(1).residualProjection)).toThrow();
    expect(model.inputLayers.map((layer) => layer.name)).toEqual(['token_ids', 'attention_mask']);
  });

  it('padding does not change a sentence embedding', async () => {
    const ids = tf.tensor2d([[3, 5, 7, 0, 0, 0, 0]], [1, 7], 'int32');
    const mask = tf.tensor2d([[1, 1, 1, 0, 0, 0, 0]]);
    const garbage = tf.tensor2d([[3, 5, 7, 9, 1, 2, 10]], [1, 7], 'int32');
    const unpaddedIds = tf.tensor2d([[3, 5, 7]], [1, 3], 'int32');
    const unpaddedMask = tf.ones([1, 3]);
    const padded = model.predict([ids, mask]) as tf.Tensor;
    const withGarbage = model.predict([garbage, mask]) as tf.Tensor;
    const unpadded = model.predict([unpaddedIds, unpaddedMask]) as tf.Tensor;
    await expectTensorsClose(padded, unpadded, 1e-5);
    await expectTensorsClose(withGarbage, unpadded, 1e-5);
    tf.dispose([ids, mask, garbage, unpaddedIds, unpaddedMask, padded, withGarbage, unpadded]);
  });

  it('runs full fine-tuning steps with a classifier head and no tensor leaks', async () => {
    const classifier = withClassifierHead(model, 3);
    expect(classifier.getLayer(layerNames.classifier).getClassName()).toBe('Dense');
    const ids = tf.tensor2d(
      [
        [1, 2, 3, 4],
        [5, 6, 0, 0],
      ],
      [2, 4],
      'int32',
    );
    const mask = tf.tensor2d([
      [1, 1, 1, 1],
      [1, 1, 0, 0],
    ]);
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3));
    const optimizer = tf.train.adam(1e-2);
    const embeddingsBefore = model.getLayer(layerNames.embeddings).getWeights()[0].clone();
    const step = () =>
      optimizer.minimize(
        () =>
          tf.losses.softmaxCrossEntropy(
            labels,
            classifier.apply([ids, mask], { training: true }) as tf.Tensor,
          ) as tf.Scalar,
        true,
        classifier.trainableWeights.map((w) => w.read() as tf.Variable),
      ) as tf.Scalar;
    tf.dispose(step()); // the first step creates Adam's slots
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const loss = step();
      losses.push((await loss.data())[0]);
      loss.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(losses.every(Number.isFinite)).toBe(true);
    // The embedding table trained (through the scatterND gradient).
    const embeddingsAfter = model.getLayer(layerNames.embeddings).getWeights()[0];
    const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(embeddingsAfter, embeddingsBefore))));
    expect((await moved.data())[0]).toBeGreaterThan(0);
    tf.dispose([ids, mask, labels, embeddingsBefore, moved]);
    optimizer.dispose();
    classifier.getLayer(layerNames.classifier).dispose();
  });

  it('trains with compile() and fit()', async () => {
    const classifier = withClassifierHead(model, 2);
    const optimizer = tf.train.adam(1e-3);
    classifier.compile({ optimizer, loss: 'categoricalCrossentropy' });
    const ids = tf.tensor2d([[1, 2, 3], [4, 5, 0]], [2, 3], 'int32');
    const mask = tf.tensor2d([[1, 1, 1], [1, 1, 0]]);
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1], 'int32'), 2));
    const history = await classifier.fit([ids, mask], labels, { epochs: 2, batchSize: 2, verbose: 0 });
    expect(history.history.loss.every((x) => Number.isFinite(x as number))).toBe(true);
    tf.dispose([ids, mask, labels]);
    optimizer.dispose();
    classifier.getLayer(layerNames.classifier).dispose();
  });

  it('builds post-norm, causal, learned-position variants', async () => {
    const decoder = buildTransformerEncoder({
      ...tinyConfig,
      positionEncoding: 'learned',
      normalization: 'post',
      embeddingLayerNorm: true,
      finalLayerNorm: true,
      causal: true,
      blocks: [{ hiddenSize: 4, numHeads: 2, intermediateSize: 8, activation: 'gelu' }],
      pooling: 'none',
      pooler: undefined,
      l2Normalize: false,
    });
    const ids = tf.tensor2d([[1, 2, 3]], [1, 3], 'int32');
    const changed = tf.tensor2d([[1, 2, 9]], [1, 3], 'int32');
    const mask = tf.ones([1, 3]);
    const a = decoder.predict([ids, mask]) as tf.Tensor;
    const b = decoder.predict([changed, mask]) as tf.Tensor;
    expect(a.shape).toEqual([1, 3, 4]);
    const [a2, b2] = tf.tidy(() => [tf.slice(a, [0, 0, 0], [1, 2, 4]), tf.slice(b, [0, 0, 0], [1, 2, 4])]);
    await expectTensorsClose(a2, b2, 1e-6);
    tf.dispose([ids, changed, mask, a, b, a2, b2]);
    decoder.dispose();
  });
});

// tfjs-node returns typed arrays from Node's realm, which tfjs's io code (instanceof Float32Array)
// rejects inside jest's sandbox; model.save works with tfjs-node outside jest.
describeEachBackend(
  'buildTransformerEncoder serialisation',
  () => {
    let model: LayersModel;

    beforeAll(() => {
      model = buildTransformerEncoder(tinyConfig, 'tiny');
      seeded(model);
    });

    afterAll(() => model.dispose());

    it('saves and loads as a layers model with the same outputs', async () => {
      let saved: tf.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const restored = await loadLayersModel(tf.io.fromMemory(saved as tf.io.ModelArtifacts));
      const ids = tf.tensor2d([[4, 2, 9, 0]], [1, 4], 'int32');
      const mask = tf.tensor2d([[1, 1, 1, 0]]);
      const a = model.predict([ids, mask]) as tf.Tensor;
      const b = restored.predict([ids, mask]) as tf.Tensor;
      await expectTensorsClose(b, a, 1e-6);
      expect(restored.getLayer('encoder/layer_1/ffn/output').getClassName()).toBe('Dense');
      tf.dispose([ids, mask, a, b]);
      restored.dispose();
    });
  },
  { only: ['cpu', 'wasm', 'webgpu', 'webgl'] },
);
