// fusedAdam({ sparseEmbeddings: true }) through a model that embeds with TokenAndPositionEmbedding:
// only the looked-up rows of the token table move (LazyAdam); a table tied to an LM head is dense.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FusedAdamOptimizer } from '@tfjs-peft/core';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { TiedEmbeddingHead, TokenAndPositionEmbedding } from '../index';

const VOCAB = 20;
const DIM = 4;
const LENGTH = 4;
/** Rows 10..19 are never looked up; step 1 looks up 1..5, step 2 only 6..9 (and 1, 2 again at 3). */
const BATCHES = [
  [1, 2, 3, 1, 4, 5, 5, 2],
  [6, 7, 8, 9, 9, 8, 7, 6],
  [1, 2, 6, 6, 9, 9, 1, 2],
];

function classifier(tiedHead = false): tfl.LayersModel {
  const ids = tfl.input({ shape: [LENGTH], dtype: 'int32' });
  const embedding = new TokenAndPositionEmbedding({
    vocabSize: VOCAB,
    embeddingSize: DIM,
    positionEncoding: 'learned',
    maxPositions: LENGTH,
  });
  const embedded = embedding.apply(ids) as tfl.SymbolicTensor;
  const output = tiedHead
    ? (new TiedEmbeddingHead({ embedding }).apply(embedded) as tfl.SymbolicTensor)
    : (tfl.layers
        .dense({ units: 2, kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) })
        .apply(tfl.layers.globalAveragePooling1d().apply(embedded)) as tfl.SymbolicTensor);
  return tfl.model({ inputs: ids, outputs: output });
}

/** Two models with the same weights. */
function twins(tiedHead = false): [tfl.LayersModel, tfl.LayersModel] {
  const a = classifier(tiedHead);
  const b = classifier(tiedHead);
  b.setWeights(a.getWeights());
  return [a, b];
}

function stepLoss(model: tfl.LayersModel, batch: number[], step: number): () => tf.Scalar {
  return () =>
    tf.tidy(() => {
      const out = model.apply(tf.tensor2d(batch, [2, LENGTH], 'int32'), { training: true }) as tf.Tensor;
      const target = tf.sin(tf.add(tf.range(0, out.size, 1, 'float32'), step));
      return tf.mean(tf.square(tf.sub(tf.reshape(out, [-1]), target))) as tf.Scalar;
    });
}

const optimizer = (sparseEmbeddings: boolean) =>
  new FusedAdamOptimizer({ learningRate: 0.05, epsilon: 1e-7, sparseEmbeddings });

async function rows(table: tf.Tensor, from: number, to: number): Promise<number[]> {
  return Array.from(await table.data()).slice(from * DIM, to * DIM);
}

describeEachBackend(
  'fusedAdam sparseEmbeddings through TokenAndPositionEmbedding (model.apply, model.fit)',
  () => {
    it('model.apply + minimize: step 1 equals dense Adam; later, rows not looked up keep value and moments; no tensor growth', async () => {
      const [sparseModel, denseModel] = twins();
      const sparse = optimizer(true);
      const dense = optimizer(false);
      const initial = await rows(sparseModel.getWeights()[0]!, 0, VOCAB);
      sparse.minimize(stepLoss(sparseModel, BATCHES[0]!, 0), true)?.dispose();
      dense.minimize(stepLoss(denseModel, BATCHES[0]!, 0), true)?.dispose();
      // From zero moments, Adam leaves rows with a zero gradient where they are: the same weights.
      const afterFirst = sparseModel.getWeights();
      const denseFirst = denseModel.getWeights();
      for (let i = 0; i < afterFirst.length; i++)
        await expectTensorsClose(afterFirst[i]!, denseFirst[i]!, 1e-6);
      const touchedOnlyInStep1 = await rows(afterFirst[0]!, 1, 6);
      const tensors = tf.memory().numTensors;
      sparse.minimize(stepLoss(sparseModel, BATCHES[1]!, 1), true)?.dispose();
      dense.minimize(stepLoss(denseModel, BATCHES[1]!, 1), true)?.dispose();
      expect(tf.memory().numTensors).toBe(tensors);
      const sparseTable = sparseModel.getWeights()[0]!;
      expect(await rows(sparseTable, 1, 6)).toEqual(touchedOnlyInStep1);
      // Dense Adam keeps moving rows 1..5 on their momentum.
      expect(await rows(denseModel.getWeights()[0]!, 1, 6)).not.toEqual(touchedOnlyInStep1);
      expect(await rows(sparseTable, 10, VOCAB)).toEqual(initial.slice(10 * DIM));
      expect(await rows(sparseTable, 6, 10)).not.toEqual(initial.slice(6 * DIM, 10 * DIM));
      // The table's moments: zero in rows never looked up.
      const moments = await sparse.getWeights();
      const tableName = (sparseModel.weights[0]!.read() as tf.Variable).name;
      const m = moments.find((w) => w.name === `${tableName}/m`)!.tensor;
      expect((await rows(m, 10, VOCAB)).every((x) => x === 0)).toBe(true);
      moments[0]!.tensor.dispose();
      sparse.dispose();
      dense.dispose();
      sparseModel.dispose();
      denseModel.dispose();
    });

    it('model.fit: rows never looked up stay bit-identical, the rest trains', async () => {
      const model = classifier();
      const initial = await rows(model.getWeights()[0]!, 0, VOCAB);
      model.compile({ optimizer: optimizer(true), loss: 'meanSquaredError' });
      const xs = tf.tensor2d(BATCHES.flat(), [6, LENGTH], 'int32');
      const ys = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 12, 1, 'float32'), [6, 2])));
      await model.fit(xs, ys, { epochs: 2, batchSize: 2, shuffle: false, verbose: 0 });
      const table = model.getWeights()[0]!;
      expect(await rows(table, 10, VOCAB)).toEqual(initial.slice(10 * DIM));
      expect(await rows(table, 0, 1)).toEqual(initial.slice(0, DIM)); // id 0 never occurs either
      expect(await rows(table, 1, 10)).not.toEqual(initial.slice(DIM, 10 * DIM));
      model.optimizer.dispose();
      tf.dispose([xs, ys]);
      model.dispose();
    });

    it('a token table tied to an LM head (TiedEmbeddingHead) gets the dense update: equal to dense fusedAdam', async () => {
      const [sparseModel, denseModel] = twins(true);
      const sparse = optimizer(true);
      const dense = optimizer(false);
      for (let step = 0; step < BATCHES.length; step++) {
        sparse.minimize(stepLoss(sparseModel, BATCHES[step]!, step), true)?.dispose();
        dense.minimize(stepLoss(denseModel, BATCHES[step]!, step), true)?.dispose();
      }
      const a = sparseModel.getWeights();
      const b = denseModel.getWeights();
      for (let i = 0; i < a.length; i++) await expectTensorsClose(a[i]!, b[i]!, 1e-6);
      sparse.dispose();
      dense.dispose();
      sparseModel.dispose();
      denseModel.dispose();
    });
  },
);
