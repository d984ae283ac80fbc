import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { applyFrozenDense, releaseFrozenTransposes } from './frozen-dense';

interface DenseInternals {
  kernel: tfl.LayerVariable;
  bias: tfl.LayerVariable | null;
  activation: { apply(x: tf.Tensor): tf.Tensor; getClassName(): string };
  call: tfl.layers.Layer['call'];
}

/** The kernel's tensor, or null once the variable is disposed (its cached transpose went with it). */
function kernelTensor(kernel: tfl.LayerVariable): tf.Tensor | null {
  return (kernel as unknown as { val: tf.Tensor }).val.isDisposed ? null : kernel.read();
}

/**
 * While a base model is frozen, its Dense layers compute through frozenDense, so the backward pass
 * never produces a gradient for a frozen kernel (tfjs's own Dense uses a fused matMul whose gradient
 * computes dW every time). The layer objects stay the user's: only their `call` is overridden on the
 * instance, and `restore` removes the override and releases the kernel's cached transpose (wasm:
 * see FrozenDenseOptions). A layer whose kernel is trainable keeps tfjs's path.
 */
export function installFrozenPath(layer: tfl.layers.Layer): (() => void) | null {
  if (layer.getClassName() !== 'Dense') return null;
  const dense = layer as unknown as DenseInternals;
  const hadOwnCall = Object.prototype.hasOwnProperty.call(layer, 'call');
  const previous = dense.call;
  dense.call = function frozenCall(this: tfl.layers.Layer, inputs, kwargs) {
    if (dense.kernel.trainable) return previous.call(this, inputs, kwargs);
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return applyFrozenDense(
        x,
        dense.kernel.read(),
        dense.bias ? dense.bias.read() : null,
        dense.activation,
      );
    });
  };
  return () => {
    releaseFrozenTransposes([kernelTensor(dense.kernel)].filter((k) => k !== null));
    if (hadOwnCall) dense.call = previous;
    else delete (layer as unknown as { call?: unknown }).call;
  };
}
