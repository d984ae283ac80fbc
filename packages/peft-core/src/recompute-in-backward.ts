import * as tf from '@tensorflow/tfjs-core';
import { PeftError } from './errors';

/** A function of tensors whose intermediates are not kept for the backward pass (see recomputeInBackward). */
export type RecomputedFunction = (...inputs: tf.Tensor[]) => tf.Tensor;

export interface RecomputeOptions {
  /**
   * Which inputs get a gradient, by position (default: every float32 input). The others — a
   * padding mask, integer ids — get zeros, and their recomputation takes no derivative for them.
   */
  differentiable?: readonly boolean[];
}

/** The slice of tfjs's engine state that a gradient taken inside a backward pass must leave as it was. */
interface TapeState {
  state: { activeTape: unknown };
}

/**
 * tf.grads inside another gradient's backward pass: tfjs 4.x's engine.gradients ends by setting the
 * engine's active tape to null, and the outer tf.variableGrads still reads its own tape after the
 * gradient functions ran, so the outer tape is put back.
 */
function nestedGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const engine = tf.engine() as unknown as Partial<TapeState>;
  const outerTape = engine.state?.activeTape;
  try {
    return tf.grads(f)(xs, dy);
  } finally {
    if (engine.state !== undefined) engine.state.activeTape = outerTape;
  }
}

/**
 * Gradient checkpointing for one function of tensors: `fn` runs once in the forward pass and only
 * its inputs are kept for the backward pass, which runs `fn` again to take its gradient. Memory
 * against time: the intermediates of `fn` (attention's [batch, heads, length, length] scores and
 * probabilities, say — quadratic in the sequence length) are never held across the step, for the
 * price of a second forward pass of `fn`. The gradients are those of `fn` itself (the same ops run
 * again on the same inputs), so they equal plain autodiff to float rounding on every backend.
 *
 * `fn` must be a pure function of its inputs: no trainable variable read inside it (its gradient
 * would be lost — pass the value as an input instead), and no randomness (dropout would draw a
 * different mask when recomputed).
 */
export function recomputeInBackward(
  fn: RecomputedFunction,
  options: RecomputeOptions = {},
): (...inputs: tf.Tensor[]) => tf.Tensor {
  return (...inputs: tf.Tensor[]) => {
    const differentiable = inputs.map(
      (input, i) => (options.differentiable?.[i] ?? true) && input.dtype === 'float32',
    );
    const checkpointed = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const xs = args.slice(0, -1) as tf.Tensor[];
      save(xs);
      const value = fn(...xs);
      if (!(value instanceof tf.Tensor)) {
        throw new PeftError('recomputeInBackward: the function must return one tensor');
      }
      return {
        value,
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const upstream = Array.isArray(dy) ? dy[0]! : dy;
          const positions = saved.map((_, i) => i).filter((i) => differentiable[i]);
          // Recompute fn with the differentiable inputs as the variables of a fresh gradient.
          const partial = (...moving: tf.Tensor[]) =>
            fn(...saved.map((x, i) => (differentiable[i] ? moving[positions.indexOf(i)]! : x)));
          const grads =
            positions.length === 0
              ? []
              : nestedGrads(
                  partial,
                  positions.map((i) => saved[i]!),
                  upstream,
                );
          return saved.map((x, i) => (differentiable[i] ? grads[positions.indexOf(i)]! : tf.zerosLike(x)));
        },
      };
    });
    return checkpointed(...inputs) as tf.Tensor;
  };
}
