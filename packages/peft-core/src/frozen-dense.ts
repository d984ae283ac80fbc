import * as tf from '@tensorflow/tfjs-core';

/** The activations tfjs fuses into a Dense layer's matMul, whose derivative we can take from the output. */
export const FUSABLE_ACTIVATIONS = ['linear', 'relu', 'elu'] as const;
export type FusableActivation = (typeof FUSABLE_ACTIVATIONS)[number];

/**
 * `act(x·W + b)` for a frozen kernel W: the gradient computes dx (and db when a bias is passed) but
 * never dW. tfjs's own Dense gradient (fused matMul) computes all three, wasting a full matMul per
 * frozen layer in every backward pass — the cost PEFT exists to avoid. The forward pass is the same
 * fused kernel tfjs's Dense runs, so outputs are bit-identical to the layer's on every backend. W is
 * read from the closure, so the tape never sees it; the bias is an input, so a trainable bias (BitFit,
 * LoRA bias) still learns.
 */
export function frozenDense(
  x: tf.Tensor,
  kernel: tf.Tensor,
  bias: tf.Tensor | null,
  activation: FusableActivation = 'linear',
): tf.Tensor {
  const inputShape = x.shape;
  const inputDim = inputShape[inputShape.length - 1]!;
  const units = kernel.shape[1]!;
  const forward = (input: tf.Tensor, b: tf.Tensor | undefined) => {
    const flat = input.rank === 2 ? (input as tf.Tensor2D) : tf.reshape(input, [-1, inputDim]);
    const product = tf.fused.matMul({
      a: flat as tf.Tensor2D,
      b: kernel as tf.Tensor2D,
      bias: b,
      activation,
    });
    return input.rank === 2 ? product : tf.reshape(product, [...inputShape.slice(0, -1), units]);
  };
  // The activation's derivative from its output, as tfjs's fused-matMul gradient takes it.
  const preActivationGradient = (dy: tf.Tensor, y: tf.Tensor) => {
    const flatDy = tf.reshape(dy, [-1, units]);
    if (activation === 'linear') return flatDy;
    const flatY = tf.reshape(y, [-1, units]);
    if (activation === 'relu') return tf.mul(flatDy, tf.step(flatY));
    return tf.where(tf.greater(flatY, 0), flatDy, tf.mul(flatDy, tf.add(flatY, 1)));
  };
  const inputGradient = (dPre: tf.Tensor) => tf.reshape(tf.matMul(dPre, kernel, false, true), inputShape);
  if (bias === null) {
    return tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
      const value = forward(input, undefined);
      save([value]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, [y]: tf.Tensor[]) => inputGradient(preActivationGradient(dy, y)),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0])(x);
  }
  return tf.customGrad(((input: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const value = forward(input, b);
    save([value]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, [y]: tf.Tensor[]) => {
        const dPre = preActivationGradient(dy, y);
        return [inputGradient(dPre), tf.sum(dPre, 0)];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0])(x, bias);
}

/**
 * A Dense layer's whole forward pass with its kernel frozen, computed the way tfjs's Dense computes
 * it — fused matMul + bias + activation for the activations tfjs fuses, else matMul, bias add and
 * activation as three steps — so outputs are bit-identical to the layer's own on every backend.
 */
export function applyFrozenDense(
  x: tf.Tensor,
  kernel: tf.Tensor,
  bias: tf.Tensor | null,
  activation: { getClassName(): string; apply(x: tf.Tensor): tf.Tensor },
): tf.Tensor {
  const name = activation.getClassName();
  if ((FUSABLE_ACTIVATIONS as readonly string[]).includes(name)) {
    return frozenDense(x, kernel, bias, name as FusableActivation);
  }
  const product = frozenDense(x, kernel, null);
  return activation.apply(bias ? tf.add(product, bias) : product);
}
