// The record of looked-up rows behind embeddingLookup's table gradients: made only inside a scope,
// keyed by the gradient tensor itself, released when the scope ends (returns or throws).
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend } from '@tfjs-peft/test-utils';
import { embeddingLookup } from './embedding-lookup';
import {
  SparseEmbeddingScopeError,
  embeddingGradientRows,
  sparseEmbeddingGradientsRecording,
  withSparseEmbeddingGradients,
} from './sparse-embedding-gradients';

describeEachBackend('withSparseEmbeddingGradients: the rows behind a table gradient', () => {
  const makeTable = (name: string) =>
    tf.tidy(() => tf.variable(tf.reshape(tf.sin(tf.range(0, 15, 1, 'float32')), [5, 3]), true, name));
  const makeIds = () => tf.tensor2d([2, 0, 2, 1, 2, 0], [2, 3], 'int32');
  const lookupLoss = (table: tf.Variable, ids: tf.Tensor) => () =>
    tf.sum(tf.square(embeddingLookup(table as unknown as tf.Tensor2D, ids))) as tf.Scalar;

  it('records the looked-up ids (flat, in order) for the gradient itself, only inside a scope, and releases them after', async () => {
    const table = makeTable('record_rows');
    const ids = makeIds();
    const outside = tf.variableGrads(lookupLoss(table, ids), [table]);
    expect(embeddingGradientRows(outside.grads[table.name]!)).toBeUndefined();
    expect(sparseEmbeddingGradientsRecording()).toBe(false);
    const before = tf.memory().numTensors;
    let rows: tf.Tensor1D | undefined;
    const values = await withSparseEmbeddingGradients(() => {
      expect(sparseEmbeddingGradientsRecording()).toBe(true);
      const { value, grads } = tf.variableGrads(lookupLoss(table, ids), [table]);
      rows = embeddingGradientRows(grads[table.name]!);
      expect(rows?.shape).toEqual([6]);
      const read = rows!.data();
      tf.dispose([value, grads[table.name]!]);
      return { read };
    }).read;
    expect(Array.from(values)).toEqual([2, 0, 2, 1, 2, 0]);
    expect(rows!.isDisposed).toBe(true);
    expect(sparseEmbeddingGradientsRecording()).toBe(false);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([outside.value, outside.grads[table.name]!, table, ids]);
  });

  it('no record for a gradient that is not the lookup’s own: two lookups of one table, or a transformed gradient', () => {
    const table = makeTable('two_lookups');
    const ids = makeIds();
    withSparseEmbeddingGradients(() => {
      const twice = tf.variableGrads(
        () => tf.tidy(() => tf.add(lookupLoss(table, ids)(), lookupLoss(table, ids)()) as tf.Scalar),
        [table],
      );
      expect(embeddingGradientRows(twice.grads[table.name]!)).toBeUndefined();
      const once = tf.variableGrads(lookupLoss(table, ids), [table]);
      const clipped = tf.clipByValue(once.grads[table.name]!, -0.1, 0.1);
      expect(embeddingGradientRows(once.grads[table.name]!)).toBeDefined();
      expect(embeddingGradientRows(clipped)).toBeUndefined();
      tf.dispose([twice.value, twice.grads[table.name]!, once.value, once.grads[table.name]!, clipped]);
    });
    tf.dispose([table, ids]);
  });

  it('nested scopes: an inner record is visible inside, released when the inner scope ends', () => {
    const table = makeTable('nested');
    const ids = makeIds();
    withSparseEmbeddingGradients(() => {
      let gradient: tf.Tensor | undefined;
      withSparseEmbeddingGradients(() => {
        const { value, grads } = tf.variableGrads(lookupLoss(table, ids), [table]);
        gradient = grads[table.name];
        expect(embeddingGradientRows(gradient!)).toBeDefined();
        value.dispose();
      });
      expect(embeddingGradientRows(gradient!)).toBeUndefined();
      expect(sparseEmbeddingGradientsRecording()).toBe(true);
      gradient!.dispose();
    });
    tf.dispose([table, ids]);
  });

  it('releases the records when fn throws, and refuses an async fn with a typed error', async () => {
    const table = makeTable('throws');
    const ids = makeIds();
    const before = tf.memory().numTensors;
    expect(() =>
      withSparseEmbeddingGradients(() => {
        const { value, grads } = tf.variableGrads(lookupLoss(table, ids), [table]);
        tf.dispose([value, grads[table.name]!]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(tf.memory().numTensors).toBe(before);
    expect(sparseEmbeddingGradientsRecording()).toBe(false);
    const asyncStep = async () => undefined;
    expect(() => withSparseEmbeddingGradients(asyncStep)).toThrow(SparseEmbeddingScopeError);
    expect(sparseEmbeddingGradientsRecording()).toBe(false);
    tf.dispose([table, ids]);
  });
});
