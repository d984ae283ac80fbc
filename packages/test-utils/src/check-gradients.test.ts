import * as tf from '@tensorflow/tfjs-core';
import { checkGradients } from './check-gradients';
import { describeEachBackend } from './describe-each-backend';

describeEachBackend('checkGradients', (backend) => {
  it('accepts correct gradients of a small network', async () => {
    const x = tf.tensor2d([
      [0.5, -1, 2],
      [1.5, 0.25, -0.75],
    ]);
    const initial = tf.tensor2d([
      [0.1, -0.2],
      [0.3, 0.4],
      [-0.5, 0.6],
    ]);
    const w = tf.variable(initial, true, `w_${backend}`); // a Variable is a new tensor: dispose both
    initial.dispose();
    const b = tf.tensor1d([0.05, -0.1]);
    const result = await checkGradients(
      ([wv, bv]) => tf.mean(tf.square(tf.tanh(tf.add(tf.matMul(x, wv), bv)))),
      [w, b],
    );
    expect(result.checked).toBe(8);
    expect(result.maxError).toBeLessThan(1e-2);
    tf.dispose([x, w, b]);
  });

  it('rejects a deliberately wrong gradient, naming the element', async () => {
    // y = sum(x^2) with a custom gradient of 3x instead of 2x.
    const wrongSquareSum = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const x = args[0] as tf.Tensor;
      (args[1] as tf.GradSaveFunc)([x]);
      return {
        value: tf.sum(tf.square(x)),
        gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) => tf.mul(dy, tf.mul(saved, 3)),
      };
    });
    const x = tf.tensor1d([1, 2, 3]);
    await expect(checkGradients(([v]) => wrongSquareSum(v) as tf.Tensor, [x])).rejects.toThrow(
      /gradient mismatch for variables\[0\] element 0 of shape \[3\]: analytic 3, numeric 2\.\d+/,
    );
    tf.dispose(x);
  });

  it('rejects a non-scalar function', async () => {
    const x = tf.tensor1d([1, 2]);
    await expect(checkGradients(([v]) => tf.mul(v, 2), [x])).rejects.toThrow();
    tf.dispose(x);
  });
});
