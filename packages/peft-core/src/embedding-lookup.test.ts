import * as tf from '@tensorflow/tfjs-core';
import { checkGradients, describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { embeddingLookup } from './embedding-lookup';

describeEachBackend('embeddingLookup', () => {
  const table = () =>
    tf.tensor2d([0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2, -1.3, 1.4, 1.5], [5, 3]);
  // Repeated ids (2 three times, 0 twice) exercise the summing of duplicate rows; id 4 is unused.
  const ids = () =>
    tf.tensor2d(
      [
        [2, 0, 2],
        [1, 2, 0],
      ],
      [2, 3],
      'int32',
    );

  it('gathers rows into [...ids.shape, dim]', async () => {
    const t = table();
    const i = ids();
    const out = embeddingLookup(t, i);
    expect(out.shape).toEqual([2, 3, 3]);
    const expected = tf.tidy(() => tf.reshape(tf.gather(t, tf.reshape(i, [-1])), [2, 3, 3]));
    await expectTensorsClose(out, expected, 0);
    tf.dispose([t, i, out, expected]);
  });

  it('gradient sums repeated rows and matches central finite differences', async () => {
    const t = table();
    const i = ids();
    const weights = tf.tensor3d(
      Array.from({ length: 18 }, (_, k) => Math.sin(k + 1)),
      [2, 3, 3],
    );
    const loss = ([x]: tf.Tensor[]) =>
      tf.sum(tf.mul(tf.square(embeddingLookup(x as tf.Tensor2D, i)), weights));
    const result = await checkGradients(loss, [t], { tolerance: 1e-3 });
    expect(result.checked).toBe(15);
    // The row of the unused id gets exactly zero gradient.
    const gradient = tf.grad((x: tf.Tensor) => loss([x]))(t);
    const unused = tf.slice(gradient, [4, 0], [1, 3]);
    await expectTensorsClose(unused, [[0, 0, 0]], 0);
    tf.dispose([t, i, weights, gradient, unused]);
  });

  it('trains a variable table without UnsortedSegmentSum', async () => {
    const initial = table();
    const variable = tf.variable(initial);
    initial.dispose();
    const i = ids();
    const optimizer = tf.train.sgd(0.1);
    const before = tf.memory().numTensors;
    for (let step = 0; step < 3; step++) {
      const cost = optimizer.minimize(
        () => tf.sum(tf.square(embeddingLookup(variable as tf.Tensor2D, i))) as tf.Scalar,
      );
      if (cost) cost.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    tf.dispose([variable, i]);
  });
});

// The backends whose gather checks its indices: wasm now looks rows up with GatherNd, which does not,
// so embeddingLookup checks them there itself. (tfjs's webgl and webgpu gather kernels do not check:
// reading every id back from the GPU would stall each step.)
describeEachBackend(
  'embeddingLookup: out-of-range ids',
  () => {
    it('refuses a token id outside the table (no row read past it), and leaves no tensor behind', () => {
      const t = tf.tensor2d([0.1, -0.2, 0.3, 0.4, 0.5, -0.6], [3, 2]);
      const before = tf.memory().numTensors;
      for (const bad of [t.shape[0], -1]) {
        const i = tf.tensor2d([[0, bad]], [1, 2], 'int32');
        expect(() => embeddingLookup(t, i)).toThrow(new RegExp(`${bad}`));
        i.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
      t.dispose();
    });
  },
  { only: ['cpu', 'wasm', 'tensorflow'] },
);
