import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';

/**
 * What a method's layer (a LoRA wrapper, an inserted adapter, a trained bias…) offers the generic
 * lifecycle in PeftModel. Methods implement it; peft-core drives it and knows nothing else about them.
 */
export interface PeftLayer {
  readonly isPeftLayer: true;
  readonly name: string;
  readonly peftType: string;
  /**
   * The layer this one wraps; null for layers a method inserted, which unloading removes by passing
   * their first input through (so an inserted layer with several inputs takes the main path first).
   */
  readonly baseLayer: tfl.layers.Layer | null;
  /** False for layers whose adapters cannot be folded into weights (inserted adapters); mergeAdapter refuses them up front. */
  readonly mergeable?: boolean;
  /** The module path used in saved keys: `base_model.model.<moduleName>.<suffix>`. */
  readonly moduleName: string;
  adapterNames(): string[];
  /** Adapters that take part in the forward pass (their outputs are summed where several are active). */
  setActiveAdapters(names: readonly string[]): void;
  /** While disabled the layer computes exactly its base layer (merged adapters stay merged). */
  setAdaptersEnabled(enabled: boolean): void;
  readonly mergedAdapters: readonly string[];
  /** Writes the adapters' deltas into the base weights. */
  merge(names: readonly string[]): void;
  /** What merging these adapters would make non-finite (e.g. 'the kernel'), or null if all is finite. */
  findNonFiniteMerge(names: readonly string[]): Promise<string | null>;
  /** Restores the base weights bit-exactly. */
  unmerge(): void;
  /** Forgets the merge bookkeeping so the merged weights become the base (for mergeAndUnload). */
  commitMerge(): void;
  deleteAdapter(name: string): void;
  /** The adapter's own variables (trainable when it is being trained). */
  adapterVariables(name: string): tfl.LayerVariable[];
  /** Saved tensors, keyed by PEFT suffix (`lora_A.weight`…), in PyTorch layout. The caller disposes them. */
  adapterState(name: string): Map<string, tf.Tensor>;
  /** Expected shapes of the saved tensors, to validate a file before anything is written. */
  adapterStateShapes(name: string): Map<string, number[]>;
  /** Writes validated tensors (PyTorch layout) into the adapter's variables. */
  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void;
}

export function isPeftLayer(layer: unknown): layer is PeftLayer & tfl.layers.Layer {
  return (
    typeof layer === 'object' && layer !== null && (layer as { isPeftLayer?: unknown }).isPeftLayer === true
  );
}
