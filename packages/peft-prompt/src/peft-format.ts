import type * as tfl from '@tensorflow/tfjs-layers';
import {
  ADAPTER_WEIGHTS_FILE,
  parseSafetensors,
  PeftModel,
  resolveAdapterStore,
  serializeSafetensors,
  type AdapterStore,
  type LoadAdapterOptions,
  type SaveAdapterOptions,
} from '@tfjs-peft/core';
import { PROMPT_MODULE, PROMPT_STATE_KEY } from './prompt-embedding';

const CORE_PREFIX = 'base_model.model.';
const INTERNAL_PROMPT_KEY = `${CORE_PREFIX}${PROMPT_MODULE}.${PROMPT_STATE_KEY}`;

/** core key → PEFT prompt-learning key: `prompt_embeddings`, and `base_model.<module>` (no `.model.`) for saved modules. */
function toPeftKey(key: string): string {
  if (key === INTERNAL_PROMPT_KEY) return PROMPT_STATE_KEY;
  if (key.startsWith(CORE_PREFIX)) return `base_model.${key.slice(CORE_PREFIX.length)}`;
  return key;
}

function toCoreKey(key: string): string {
  if (key === PROMPT_STATE_KEY) return INTERNAL_PROMPT_KEY;
  if (key.startsWith('base_model.') && !key.startsWith(CORE_PREFIX))
    return `${CORE_PREFIX}${key.slice('base_model.'.length)}`;
  return key;
}

function renameKeys(bytes: Uint8Array, rename: (key: string) => string): Uint8Array {
  const file = parseSafetensors(bytes, ADAPTER_WEIGHTS_FILE);
  const renamed = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [key, t] of file.tensors) renamed.set(rename(key), { shape: t.shape, data: t.data });
  return serializeSafetensors(renamed, file.metadata);
}

/**
 * An AdapterStore that reads and writes Hugging Face PEFT's prompt-learning layout (`prompt_embeddings`
 * with no prefix, saved modules as `base_model.classifier.weight`) around any other store
 * (`file://`, `memory://`, …). peft-core's own saver writes every key as `base_model.model.<module>.…`;
 * this translates at the file boundary in both directions. Reading also accepts core's layout.
 */
export function promptAdapterStore(location: string | AdapterStore): AdapterStore {
  const inner = resolveAdapterStore(location);
  const isWeights = (path: string) =>
    path === ADAPTER_WEIGHTS_FILE || path.endsWith(`/${ADAPTER_WEIGHTS_FILE}`);
  return {
    url: inner.url,
    async readFile(path, maxBytes) {
      const bytes = await inner.readFile(path, maxBytes);
      return bytes && isWeights(path) ? renameKeys(bytes, toCoreKey) : bytes;
    },
    async writeFiles(files) {
      const out = new Map<string, Uint8Array>();
      for (const [path, bytes] of files)
        out.set(path, isWeights(path) ? renameKeys(bytes, toPeftKey) : bytes);
      await inner.writeFiles(out);
    },
  };
}

/** `peft.saveAdapter` in PEFT's prompt-learning layout (what `PeftModel.save_pretrained` writes). */
export function savePromptAdapter(
  peft: PeftModel,
  location: string | AdapterStore,
  options?: SaveAdapterOptions,
): Promise<void> {
  return peft.saveAdapter(promptAdapterStore(location), options);
}

/** `PeftModel.fromPretrained` for prompt-learning adapters written by PEFT (or by savePromptAdapter). */
export function promptFromPretrained(
  base: tfl.LayersModel,
  location: string | AdapterStore,
  options?: LoadAdapterOptions,
): Promise<PeftModel> {
  return PeftModel.fromPretrained(base, promptAdapterStore(location), options);
}

/** `peft.loadAdapter` for prompt-learning adapters in PEFT's layout. */
export function loadPromptAdapter(
  peft: PeftModel,
  location: string | AdapterStore,
  adapterName: string,
  options?: Omit<LoadAdapterOptions, 'adapterName'>,
): Promise<void> {
  return peft.loadAdapter(promptAdapterStore(location), adapterName, options);
}
