import * as tf from '@tensorflow/tfjs-core';

/**
 * `x·W (+ b)` for a frozen kernel W: its gradient computes dx (and db when a bias is passed) but never
 * dW. tfjs's own Dense gradient (fused matMul) computes all three, wasting a full matMul per frozen
 * layer in every backward pass — the cost PEFT exists to avoid. W is read from the closure, so the
 * tape never sees it; the bias is an input, so a trainable bias (BitFit, LoRA bias='all') still learns.
 */
export function frozenDense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
  const inputShape = x.shape;
  const units = kernel.shape[1]!;
  const forward = (input: tf.Tensor) => {
    const flat = tf.reshape(input, [-1, inputShape[inputShape.length - 1]]);
    const product = tf.matMul(flat, kernel);
    return {
      value: tf.reshape(product, [...inputShape.slice(0, -1), units]),
      gradFunc: (dy: tf.Tensor) => {
        const flatDy = tf.reshape(dy, [-1, units]);
        return tf.reshape(tf.matMul(flatDy, kernel, false, true), inputShape);
      },
    };
  };
  if (bias === null) {
    return tf.customGrad(((input: tf.Tensor) => forward(input)) as unknown as Parameters<
      typeof tf.customGrad
    >[0])(x);
  }
  return tf.customGrad(((input: tf.Tensor, b: tf.Tensor) => {
    const { value, gradFunc } = forward(input);
    return {
      value: tf.add(value, b),
      gradFunc: (dy: tf.Tensor) => [gradFunc(dy), tf.sum(tf.reshape(dy, [-1, units]), 0)],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0])(x, bias);
}
