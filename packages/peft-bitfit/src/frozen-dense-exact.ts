import * as tf from '@tensorflow/tfjs-core';
import { frozenDense } from '@tfjs-peft/core';

/** Activations that tfjs's Dense fuses into its matMul (tfjs-layers mapActivationToFusedKernel). */
const FUSED = ['relu', 'linear', 'elu'] as const;
type FusedActivation = (typeof FUSED)[number];

/**
 * `act(x·W + b)` computed exactly as tfjs's Dense computes it, bit for bit, with W frozen (its
 * gradient is never computed; dx and db are). Dense fuses relu/linear/elu with the bias into one
 * fused matMul, whose rounding differs from matMul-then-add on some backends (wasm/XNNPACK adds
 * the bias inside the product); core's frozenDense is matMul-then-add, so for those activations the
 * forward pass here is the fused kernel and the backward pass is written out. Other activations go
 * through frozenDense followed by the activation, as Dense does (matMul, biasAdd, activation).
 */
export function frozenDenseExact(
  x: tf.Tensor,
  kernel: tf.Tensor,
  bias: tf.Tensor,
  activationName: string,
  applyActivation: (y: tf.Tensor) => tf.Tensor,
): tf.Tensor {
  if (!(FUSED as readonly string[]).includes(activationName)) {
    return applyActivation(frozenDense(x, kernel, bias));
  }
  const activation = activationName as FusedActivation;
  const inputShape = x.shape;
  const inputDim = inputShape[inputShape.length - 1]!;
  const units = kernel.shape[1]!;
  return tf.customGrad(((input: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const flat = input.rank === 2 ? input : tf.reshape(input, [-1, inputDim]);
    const product = tf.fused.matMul({ a: flat as tf.Tensor2D, b: kernel as tf.Tensor2D, bias: b, activation });
    const value = input.rank === 2 ? product : tf.reshape(product, [...inputShape.slice(0, -1), units]);
    save([value]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const flatDy = tf.reshape(dy, [-1, units]);
        const flatY = tf.reshape(saved[0], [-1, units]);
        // The activation's derivative, from its output (as tfjs's fused-matMul gradient does).
        const dPre =
          activation === 'linear'
            ? flatDy
            : activation === 'relu'
              ? tf.mul(flatDy, tf.step(flatY))
              : tf.where(tf.greater(flatY, 0), flatDy, tf.mul(flatDy, tf.add(flatY, 1)));
        return [tf.reshape(tf.matMul(dPre, kernel, false, true), inputShape), tf.sum(dPre, 0)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0])(x, bias);
}
