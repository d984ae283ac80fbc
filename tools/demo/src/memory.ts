// Peak tensor memory during training.
//
// tf.memory().numBytes is the engine's count of bytes held by live tensors (variables included) on
// the active backend. Sampling it between batches (onBatchBegin/onBatchEnd) sees only what survives
// a step — weights, optimizer slots, the data — and misses the activations and gradients that live
// inside a step, which is what PEFT methods are supposed to save. tfjs has no public allocation
// callback, so the engine hook used here turns the engine's own counter (`tf.engine().state.numBytes`,
// updated on every tensor allocation, write and disposal) into an accessor that records its maximum.
// Nothing in tfjs is replaced or mocked: every assignment is stored exactly as before; the setter
// also remembers the largest value. When the counter cannot be hooked (a future tfjs that makes it
// non-configurable), only the batch samples are used and the report says so.
//
// numBytes counts every tensor HANDLE: a reshape or a clone that shares its input's data buffer is
// counted again (and tfjs keeps a clone of every tensor a gradient needs while the tape is recorded).
// So a second figure is kept: the bytes of distinct data buffers, from the engine's own buffer table
// (`state.tensorInfo`, one entry per dataId, added when a buffer is first tracked, removed when the
// backend frees it). On cpu and wasm, views share the buffer, so this is the memory really held; on
// tensorflow (tfjs-node) each op returns a new handle, so views still count (an upper bound).
//
// What neither sees: memory a backend allocates outside tensors (tfjs-node's TensorFlow scratch
// buffers inside a kernel, the wasm heap's fragmentation, WebGL texture recycling).
import * as tf from '@tensorflow/tfjs-core';

export interface PeakTracker {
  /** True when the engine counter is hooked (every allocation seen); false: batch-boundary samples only. */
  readonly hooked: boolean;
  /** Starts a new measurement window at the current value. */
  reset(): void;
  /** Largest numBytes seen by the hook since reset (equal to current() when not hooked). */
  peak(): number;
  /** Largest bytes of distinct data buffers since reset (NaN when not hooked). */
  peakBuffers(): number;
  /** Bytes of distinct data buffers tracked since the hook was installed (NaN when not hooked). */
  currentBuffers(): number;
  current(): number;
  /** Removes the hook, leaving a plain data property with the current value. */
  stop(): void;
}

interface EngineStateLike {
  numBytes: number;
  tensorInfo: WeakMap<object, { bytes: number }>;
}

export function trackPeakBytes(): PeakTracker {
  const state = (tf.engine() as unknown as { state: EngineStateLike }).state;
  const descriptor = Object.getOwnPropertyDescriptor(state, 'numBytes');
  let value = state.numBytes;
  let peak = value;
  const hookable = descriptor !== undefined && descriptor.configurable === true && 'value' in descriptor && descriptor.writable === true;
  if (hookable) {
    Object.defineProperty(state, 'numBytes', {
      configurable: true,
      enumerable: descriptor.enumerable,
      get: () => value,
      set: (v: number) => {
        value = v;
        if (v > peak) peak = v;
      },
    });
  }
  // Distinct buffers: hook the engine's dataId → info table (a WeakMap: only buffers created after
  // this point are seen, so install it before creating tensors).
  const table = state.tensorInfo;
  const counted = new WeakMap<object, number>();
  let buffers = 0;
  let peakBuffers = 0;
  const tableHookable = hookable && table instanceof WeakMap;
  const originalSet = table.set;
  const originalDelete = table.delete;
  if (tableHookable) {
    table.set = function (key, info) {
      if (!counted.has(key)) {
        const bytes = info?.bytes ?? 0;
        counted.set(key, bytes);
        buffers += bytes;
        if (buffers > peakBuffers) peakBuffers = buffers;
      }
      return originalSet.call(this, key, info);
    };
    table.delete = function (key) {
      const bytes = counted.get(key);
      if (bytes !== undefined) {
        counted.delete(key);
        buffers -= bytes;
      }
      return originalDelete.call(this, key);
    };
  }
  return {
    hooked: hookable,
    reset() {
      value = state.numBytes;
      peak = value;
      peakBuffers = buffers;
    },
    peak: () => (hookable ? peak : state.numBytes),
    peakBuffers: () => (tableHookable ? peakBuffers : NaN),
    currentBuffers: () => (tableHookable ? buffers : NaN),
    current: () => state.numBytes,
    stop() {
      if (tableHookable) {
        delete (table as { set?: unknown }).set;
        delete (table as { delete?: unknown }).delete;
      }
      if (!hookable) return;
      Object.defineProperty(state, 'numBytes', { configurable: true, enumerable: descriptor.enumerable, writable: true, value });
    },
  };
}
