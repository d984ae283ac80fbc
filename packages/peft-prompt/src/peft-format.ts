import type * as tfl from '@tensorflow/tfjs-layers';
import {
  PeftModel,
  resolveAdapterStore,
  type AdapterFileKeys,
  type AdapterStore,
  type LoadAdapterOptions,
  type SaveAdapterOptions,
} from '@tfjs-peft/core';
import { PROMPT_MODULE, PROMPT_STATE_KEY } from './prompt-embedding';

const CORE_PREFIX = 'base_model.model.';
const INTERNAL_PROMPT_KEY = `${CORE_PREFIX}${PROMPT_MODULE}.${PROMPT_STATE_KEY}`;

/**
 * Hugging Face PEFT's prompt-learning file keys, registered with each prompt method (PeftMethod.fileKeys)
 * so that peft-core's `saveAdapter` / `fromPretrained` / `loadAdapter` write and read them:
 * `prompt_embeddings` with no prefix, saved modules as `base_model.<module>.weight` (no `.model.`).
 * Reading also accepts peft-core's generic layout (`base_model.model.prompt_encoder.prompt_embeddings`).
 */
export const promptFileKeys: AdapterFileKeys = {
  toFile(key) {
    if (key === INTERNAL_PROMPT_KEY) return PROMPT_STATE_KEY;
    if (key.startsWith(CORE_PREFIX)) return `base_model.${key.slice(CORE_PREFIX.length)}`;
    return key;
  },
  fromFile(key) {
    if (key === PROMPT_STATE_KEY) return INTERNAL_PROMPT_KEY;
    if (key.startsWith('base_model.') && !key.startsWith(CORE_PREFIX))
      return `${CORE_PREFIX}${key.slice('base_model.'.length)}`;
    return key;
  },
};

/**
 * @deprecated peft-core's `saveAdapter` / `fromPretrained` / `loadAdapter` read and write PEFT's
 * prompt-learning layout themselves now; pass the location to them directly. Returns the store.
 */
export function promptAdapterStore(location: string | AdapterStore): AdapterStore {
  return resolveAdapterStore(location);
}

/** @deprecated Use `peft.saveAdapter(location, options)`: it writes PEFT's prompt-learning layout. */
export function savePromptAdapter(
  peft: PeftModel,
  location: string | AdapterStore,
  options?: SaveAdapterOptions,
): Promise<void> {
  return peft.saveAdapter(location, options);
}

/** @deprecated Use `PeftModel.fromPretrained(base, location, options)`: it reads PEFT's prompt-learning layout. */
export function promptFromPretrained(
  base: tfl.LayersModel,
  location: string | AdapterStore,
  options?: LoadAdapterOptions,
): Promise<PeftModel> {
  return PeftModel.fromPretrained(base, location, options);
}

/** @deprecated Use `peft.loadAdapter(location, adapterName, options)`. */
export function loadPromptAdapter(
  peft: PeftModel,
  location: string | AdapterStore,
  adapterName: string,
  options?: Omit<LoadAdapterOptions, 'adapterName'>,
): Promise<void> {
  return peft.loadAdapter(location, adapterName, options);
}
