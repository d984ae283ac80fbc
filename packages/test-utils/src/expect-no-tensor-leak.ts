// Tensor and memory accounting around a block of code.
import * as tf from '@tensorflow/tfjs-core';

/** Runs `fn` (sync or async) and throws if it changed the number of live tensors. Returns fn's result
 * (which must then not be a tensor: a returned tensor is a leak by this definition). */
export async function expectNoTensorLeak<T>(fn: () => T | Promise<T>, label = 'block'): Promise<T> {
  const before = tf.memory().numTensors;
  const result = await fn();
  const after = tf.memory().numTensors;
  if (after !== before) {
    throw new Error(
      `Tensor leak in ${label}: numTensors ${before} -> ${after} (${after - before > 0 ? '+' : ''}${after - before})`,
    );
  }
  return result;
}

export interface MemoryDelta<T> {
  /** Change in tf.memory().numBytes (bytes of live tensor data) across fn. */
  bytes: number;
  /** Change in tf.memory().numTensors across fn. */
  tensors: number;
  result: T;
}

/** Runs `fn` (sync or async) and reports how many bytes and tensors it left allocated. */
export async function memoryDelta<T>(fn: () => T | Promise<T>): Promise<MemoryDelta<T>> {
  const before = tf.memory();
  const result = await fn();
  const after = tf.memory();
  return { bytes: after.numBytes - before.numBytes, tensors: after.numTensors - before.numTensors, result };
}
