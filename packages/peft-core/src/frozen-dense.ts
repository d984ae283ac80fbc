import * as tf from '@tensorflow/tfjs-core';
import { PeftConfigError } from './errors';

/**
 * Whether frozenDense keeps the transpose of each frozen kernel, so its backward product dx = dy·Wᵀ
 * is an untransposed 2-D matMul. On wasm that is the only form XNNPACK runs (a transposed or batched
 * product falls back to a scalar loop, ~14× slower); elsewhere a transposed matMul is as fast and
 * the cache would only cost memory. `'auto'` (the default): cache on the wasm backend only.
 */
export type FrozenTransposeCache = 'auto' | 'always' | 'never';

export interface FrozenDenseOptions {
  /**
   * Memory against speed: a cached transpose costs one kernel's bytes per frozen Dense layer (held
   * until the kernel variable is disposed, `unload()` restores the layer, or
   * `releaseFrozenTransposes()`), and saves a transposed matMul (wasm) in every backward pass.
   */
  cacheTransposes?: FrozenTransposeCache;
  /**
   * The backward product's form when no transpose is cached: `'auto'` (default) an explicit
   * transpose then an untransposed matMul on wasm, `matMul(dy, W, false, true)` elsewhere; `true`
   * or `false` force one form (for measuring; gradients agree to float rounding either way).
   */
  untransposedBackward?: 'auto' | boolean;
}

const settings: Required<FrozenDenseOptions> = { cacheTransposes: 'auto', untransposedBackward: 'auto' };

/** Sets frozenDense's options for every later call; returns the previous settings. */
export function configureFrozenDense(options: FrozenDenseOptions): Required<FrozenDenseOptions> {
  const previous = { ...settings };
  if (options.cacheTransposes !== undefined) {
    if (!['auto', 'always', 'never'].includes(options.cacheTransposes)) {
      throw new PeftConfigError(
        'cacheTransposes',
        options.cacheTransposes,
        "expected 'auto', 'always' or 'never'",
      );
    }
    settings.cacheTransposes = options.cacheTransposes;
  }
  if (options.untransposedBackward !== undefined) {
    if (!(['auto', true, false] as unknown[]).includes(options.untransposedBackward)) {
      throw new PeftConfigError(
        'untransposedBackward',
        options.untransposedBackward,
        "expected 'auto', true or false",
      );
    }
    settings.untransposedBackward = options.untransposedBackward;
  }
  return previous;
}

/** On wasm the backward product runs untransposed (cached Wᵀ, or an explicit transpose per step). */
function untransposedBackward(): boolean {
  if (settings.untransposedBackward !== 'auto') return settings.untransposedBackward;
  return tf.getBackend() === 'wasm';
}

function cachingTransposes(): boolean {
  return (
    settings.cacheTransposes === 'always' ||
    (settings.cacheTransposes === 'auto' && tf.getBackend() === 'wasm')
  );
}

interface CachedTranspose {
  /** The kernel's data when the transpose was taken: a variable's write swaps its dataId, never the data under one. */
  dataId: object;
  transposed: tf.Tensor2D;
  /** The variable's own dispose, wrapped so that disposing the kernel releases its transpose too. */
  restoreDispose: () => void;
}

const transposes = new Map<tf.Variable, CachedTranspose>();

function dataIdOf(t: tf.Tensor): object {
  return (t as unknown as { dataId: object }).dataId;
}

/**
 * Releases the cached transposes of these kernels (all when none are named). PeftModel calls it for
 * every frozen Dense layer on `unload()`; a disposed kernel releases its own.
 */
export function releaseFrozenTransposes(kernels?: readonly tf.Tensor[]): void {
  const keys = kernels ?? [...transposes.keys()];
  for (const kernel of keys) {
    const entry = transposes.get(kernel as tf.Variable);
    if (entry === undefined) continue;
    transposes.delete(kernel as tf.Variable);
    entry.restoreDispose();
    entry.transposed.dispose();
  }
}

/** How many frozen kernels have a cached transpose now, and their bytes (for tests and the bench). */
export function frozenTransposeCacheSize(): { kernels: number; bytes: number } {
  let bytes = 0;
  for (const entry of transposes.values()) bytes += entry.transposed.size * 4;
  return { kernels: transposes.size, bytes };
}

/** Wᵀ of a frozen kernel variable, cached until the variable's value changes or it is disposed. */
function cachedTranspose(kernel: tf.Tensor): tf.Tensor2D | null {
  if (!(kernel instanceof tf.Variable) || kernel.trainable || kernel.rank !== 2) return null;
  const entry = transposes.get(kernel);
  if (entry !== undefined && entry.dataId === dataIdOf(kernel)) return entry.transposed;
  if (entry !== undefined) {
    // Written since (a merge, an unmerge, a load): the old transpose is stale.
    entry.transposed.dispose();
    entry.transposed = tf.keep(tf.tidy(() => tf.transpose(kernel))) as tf.Tensor2D;
    entry.dataId = dataIdOf(kernel);
    return entry.transposed;
  }
  const transposed = tf.keep(tf.tidy(() => tf.transpose(kernel))) as tf.Tensor2D;
  const hadOwnDispose = Object.prototype.hasOwnProperty.call(kernel, 'dispose');
  const dispose = kernel.dispose;
  kernel.dispose = function disposeWithTranspose(this: tf.Variable) {
    releaseFrozenTransposes([kernel]);
    dispose.call(this);
  };
  transposes.set(kernel, {
    dataId: dataIdOf(kernel),
    transposed,
    restoreDispose: () => {
      if (hadOwnDispose) kernel.dispose = dispose;
      else delete (kernel as unknown as { dispose?: unknown }).dispose;
    },
  });
  return transposed;
}

/** The activations tfjs fuses into a Dense layer's matMul, whose derivative we can take from the output. */
export const FUSABLE_ACTIVATIONS = ['linear', 'relu', 'elu'] as const;
export type FusableActivation = (typeof FUSABLE_ACTIVATIONS)[number];

/**
 * `act(x·W + b)` for a frozen kernel W: the gradient computes dx (and db when a bias is passed) but
 * never dW. tfjs's own Dense gradient (fused matMul) computes all three, wasting a full matMul per
 * frozen layer in every backward pass — the cost PEFT exists to avoid. The forward pass is the same
 * fused kernel tfjs's Dense runs, so outputs are bit-identical to the layer's on every backend. W is
 * read from the closure, so the tape never sees it; the bias is an input, so a trainable bias (BitFit,
 * LoRA bias) still learns. The backward product's form depends on the backend: see
 * FrozenDenseOptions.cacheTransposes.
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
  const preActivationGradient = (dy: tf.Tensor, y: tf.Tensor | undefined) => {
    const flatDy = tf.reshape(dy, [-1, units]);
    if (activation === 'linear') return flatDy;
    const flatY = tf.reshape(y as tf.Tensor, [-1, units]); // saved for every non-linear activation
    if (activation === 'relu') return tf.mul(flatDy, tf.step(flatY));
    return tf.where(tf.greater(flatY, 0), flatDy, tf.mul(flatDy, tf.add(flatY, 1)));
  };
  // dx = dPre·Wᵀ. On wasm as an untransposed 2-D product (XNNPACK), with Wᵀ of a frozen kernel
  // variable cached at its first backward pass (so later steps run no transpose, and inference,
  // which never runs a backward pass, never pays the cache's memory).
  const inputGradient = (dPre: tf.Tensor) => {
    const transposed = cachingTransposes() ? cachedTranspose(kernel) : null;
    return tf.reshape(
      transposed !== null
        ? tf.matMul(dPre as tf.Tensor2D, transposed)
        : untransposedBackward()
          ? tf.matMul(dPre as tf.Tensor2D, tf.transpose(kernel) as tf.Tensor2D)
          : tf.matMul(dPre, kernel, false, true),
      inputShape,
    );
  };
  // The gradient reads neither x nor W from the tape (W is in the closure), and the output only for
  // a non-linear activation's derivative: saving nothing else lets the backward pass release the
  // activations early (variableGradsReleasingEarly) — the memory PEFT should save.
  const saveForGradient = (value: tf.Tensor, save: tf.GradSaveFunc) => {
    if (activation !== 'linear') save([value]);
  };
  if (bias === null) {
    return tf.customGrad(((input: tf.Tensor, save: tf.GradSaveFunc) => {
      const value = forward(input, undefined);
      saveForGradient(value, save);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => inputGradient(preActivationGradient(dy, saved[0])),
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0])(x);
  }
  return tf.customGrad(((input: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
    const value = forward(input, b);
    saveForGradient(value, save);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dPre = preActivationGradient(dy, saved[0]);
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
