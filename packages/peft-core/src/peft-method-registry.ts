import type * as tfl from '@tensorflow/tfjs-layers';
import { UnknownPeftTypeError } from './errors';
import type { PeftConfig } from './peft-config';
import type { PeftLayer } from './peft-layer';

/**
 * A PEFT method, as registered by its package (as tfjs kernels register with the engine):
 * importing `@tfjs-peft/lora` is all it takes for getPeftModel and fromPretrained to know LoRA.
 */
export interface PeftMethod<C extends PeftConfig = PeftConfig> {
  /** The `peft_type` of adapter_config.json, e.g. `LORA`. */
  readonly peftType: string;
  /** Validates an adapter_config.json object and builds the config. */
  configFromJson(json: Record<string, unknown>): C;
  /**
   * Adds adapter `adapterName` to `model`, which may already hold this method's layers for other
   * adapters. Returns the model to use from now on (a rebuilt graph, or `model` itself when only
   * existing layers changed). Must not modify `model` if it throws.
   */
  inject(model: tfl.LayersModel, config: C, adapterName: string): tfl.LayersModel;
  /**
   * Optional, for loading: before anything is allocated, checks that the config cannot make the
   * loader create far larger variables than the file holds (e.g. a rank the file lacks). Throws a
   * typed error naming the culprit.
   */
  checkConfigAgainstFile?(
    model: tfl.LayersModel,
    config: C,
    shapes: ReadonlyMap<string, readonly number[]>,
  ): void;
  /**
   * Optional: the method's saved keys differ from peft-core's `base_model.model.<module>.<suffix>`
   * (PEFT's prompt-learning methods save a bare `prompt_embeddings` and `base_model.<module>.…`).
   * `toFile` maps a key as peft-core builds it to the key written in `adapter_model.safetensors`;
   * `fromFile` maps a key read from a file back to peft-core's form (returning the key unchanged
   * accepts peft-core's own layout too). Both apply to every adapter of the method.
   */
  readonly fileKeys?: AdapterFileKeys;
  /**
   * Optional: builds adapter `newName` from existing ones (LoRA's add_weighted_adapter). Adds it to
   * the method's layers and returns its config.
   */
  addWeightedAdapter?(
    layers: readonly PeftLayer[],
    configs: ReadonlyMap<string, C>,
    request: WeightedAdapterRequest,
  ): Promise<C>;
}

/** Key mapping between peft-core's saved-key form and a method's file layout (see PeftMethod.fileKeys). */
export interface AdapterFileKeys {
  toFile(key: string): string;
  fromFile(key: string): string;
}

export interface WeightedAdapterRequest {
  adapters: readonly string[];
  weights: readonly number[];
  newName: string;
  combinationType: string;
  /** Rank of the result for SVD-based combinations; default the largest rank combined. */
  svdRank?: number;
}

const registry = new Map<string, PeftMethod>();

export function registerPeftMethod<C extends PeftConfig>(method: PeftMethod<C>): void {
  // Re-registration (a package imported twice by a bundler) replaces the entry, like tfjs kernels.
  registry.set(method.peftType, method as unknown as PeftMethod);
}

export function getPeftMethod(peftType: string): PeftMethod {
  const method = registry.get(peftType);
  if (!method) throw new UnknownPeftTypeError(peftType, [...registry.keys()]);
  return method;
}

export function registeredPeftTypes(): string[] {
  return [...registry.keys()];
}
