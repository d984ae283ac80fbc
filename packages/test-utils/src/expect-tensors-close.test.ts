import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend } from './describe-each-backend';
import { expectArraysClose, expectTensorsClose } from './expect-tensors-close';

describe('expectArraysClose', () => {
  it('accepts arrays within tolerance, nested or typed', () => {
    expectArraysClose(
      [
        [1, 2],
        [3, 4],
      ],
      new Float32Array([1, 2.00001, 3, 4]),
      1e-4,
    );
    expectArraysClose([NaN, Infinity], [NaN, Infinity], 0);
  });
  it('rejects, naming the max difference and its index', () => {
    expect(() => expectArraysClose([1, 2, 3], [1, 2.5, 3.1], 1e-3)).toThrow(
      /max \|actual - expected\| = 0\.5 > tolerance 0\.001 at \[1\]/,
    );
    expect(() => expectArraysClose([1, 2], [1, 2, 3])).toThrow(/length 2 != expected length 3/);
    expect(() => expectArraysClose([NaN], [0])).toThrow(/Infinity/);
  });
});

describeEachBackend('expectTensorsClose', () => {
  it('accepts close tensors and arrays', async () => {
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const b = tf.tensor2d([
      [1, 2],
      [3, 4.00005],
    ]);
    await expectTensorsClose(a, b, 1e-4);
    await expectTensorsClose(
      a,
      [
        [1, 2],
        [3, 4],
      ],
      0,
    );
    tf.dispose([a, b]);
  });
  it('rejects, naming the max difference and its coordinates', async () => {
    const a = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const b = tf.tensor2d([
      [1, 2, 3],
      [4, 5.5, 6],
    ]);
    await expect(expectTensorsClose(a, b, 1e-3)).rejects.toThrow(
      /= 0\.5 > tolerance 0\.001 at \[1, 1\] \(actual 5, expected 5\.5/,
    );
    const c = tf.tensor1d([1, 2, 3, 4, 5, 6]);
    await expect(expectTensorsClose(a, c)).rejects.toThrow(
      /differ in shape: actual \[2,3\] vs expected \[6\]/,
    );
    tf.dispose([a, b, c]);
  });
});
