// The fine-tuning methods the demo compares. Each takes a FRESH classifier model (pre-trained
// encoder + `classifier` head) and returns the model to train plus how to save what it learned.
// A new method adds an entry here (and its id to ALL_METHODS); the rest of the demo is generic.
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  countParameters,
  getPeftModel,
  serializeSafetensors,
  type PeftConfig,
  type PeftModel,
  type TrainableParameterCount,
} from '@tfjs-peft/core';
// Each method package registers itself with @tfjs-peft/core when imported (PeftModel.fromPretrained
// finds the method by the adapter_config.json's peft_type).
import { LoraConfig } from '@tfjs-peft/lora';
import { BottleneckConfig } from '@tfjs-peft/adapters';
import { BitFitConfig } from '@tfjs-peft/bitfit';
import { IA3Config } from '@tfjs-peft/ia3';
import { PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig } from '@tfjs-peft/prompt';

export type MethodId =
  | 'full'
  | 'lora'
  | 'dora'
  | 'houlsby'
  | 'pfeiffer'
  | 'bitfit'
  | 'ia3'
  | 'prompt-tuning'
  | 'prefix-tuning'
  | 'p-tuning'
  | 'linear-probe';
/** Table order: the ceiling first, the floor last. */
export const ALL_METHODS: readonly MethodId[] = [
  'full',
  'lora',
  'dora',
  'houlsby',
  'pfeiffer',
  'bitfit',
  'ia3',
  'prompt-tuning',
  'prefix-tuning',
  'p-tuning',
  'linear-probe',
];

export interface SavedAdapter {
  /** Folder written. */
  dir: string;
  /** Total bytes of the files written. */
  bytes: number;
  files: string[];
}

export interface PreparedMethod {
  /** The model to compile and fit. */
  model: tfl.LayersModel;
  counts: TrainableParameterCount;
  /** Writes what this method trained (the adapter; the head for a probe; everything for full fine-tuning). */
  save(dir: string): Promise<SavedAdapter>;
  /** Releases what prepare() created (not the base model: the caller disposes that). */
  dispose(): void;
  /** For PEFT methods: the PeftModel (the reload check loads its adapter folder with PeftModel.fromPretrained). */
  peft?: PeftModel;
}

export interface MethodSpec {
  id: MethodId;
  label: string;
  /** Adam learning rate used unless --lr-<id> overrides it. */
  learningRate: number;
  /** What is trained, for the report. */
  description: string;
  /** What the output folder holds. */
  saved: string;
  /** Why the method cannot run in this checkout, or undefined when it can. */
  unavailable?: () => string | undefined;
  prepare(classifierModel: tfl.LayersModel): PreparedMethod;
}

/** Every PEFT method also trains a copy of the task head (PEFT's modules_to_save), saved with the adapter. */
const HEAD = ['classifier'];

export const LORA_OPTIONS = { r: 8, loraAlpha: 16, targetModules: ['query', 'value'], modulesToSave: HEAD };
export const DORA_OPTIONS = { ...LORA_OPTIONS, useDora: true };
export const HOULSBY_OPTIONS = { placement: 'houlsby' as const, reductionFactor: 16, modulesToSave: HEAD };
export const PFEIFFER_OPTIONS = { placement: 'pfeiffer' as const, reductionFactor: 16, modulesToSave: HEAD };
export const BITFIT_OPTIONS = { targetModules: 'all' as const, modulesToSave: HEAD };
/**
 * PEFT's IA³ convention for BERT-style encoders (its TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING:
 * key, value and the feed-forward output dense, the latter scaled on its INPUT): here `key`, `value`
 * and `ffn/output` with `ffn/output` as the feed-forward module.
 */
export const IA3_OPTIONS = {
  targetModules: ['key', 'value', 'ffn/output'],
  feedforwardModules: ['ffn/output'],
  modulesToSave: HEAD,
};

/** Prompt methods: 20 virtual tokens (PEFT's examples' usual count). */
export const PROMPT_TUNING_OPTIONS = { numVirtualTokens: 20, promptTuningInit: 'sampleVocab' as const, modulesToSave: HEAD };
/**
 * USE lite's first block attends at width 256 (its embedding width) and the others at 512; PEFT's prefix
 * tuning has one token_dim for every layer, so @tfjs-peft/prompt refuses this model with a typed
 * TokenDimMismatchError (whatever tokenDim is given) — the row reports it.
 */
export const PREFIX_TUNING_OPTIONS = { numVirtualTokens: 20, modulesToSave: HEAD };
export const P_TUNING_OPTIONS = { numVirtualTokens: 20, encoderHiddenSize: 128, modulesToSave: HEAD };

export function folderBytes(dir: string): { bytes: number; files: string[] } {
  const files = readdirSync(dir, { recursive: true, withFileTypes: false }) as string[];
  let bytes = 0;
  const listed: string[] = [];
  for (const f of files) {
    const stat = statSync(path.join(dir, f));
    if (stat.isFile()) {
      bytes += stat.size;
      listed.push(f);
    }
  }
  return { bytes, files: listed.sort() };
}

/** File name of the weights written for the non-PEFT rows (linear probe, full fine-tuning). */
export const TRAINABLE_WEIGHTS_FILE = 'trainable_weights.safetensors';

/**
 * Writes the trainable weights of `model` as one safetensors file (float32), keyed by the variable's
 * original name (tfjs adds `_1`, `_2`, … to `name` when another model with the same layer names is alive).
 */
async function saveTrainableWeights(model: tfl.LayersModel, dir: string): Promise<SavedAdapter> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const w of model.trainableWeights) {
    const value = w.read();
    tensors.set(w.originalName, { shape: value.shape, data: Float32Array.from(await value.data()) });
  }
  writeFileSync(path.join(dir, TRAINABLE_WEIGHTS_FILE), serializeSafetensors(tensors));
  return { dir, ...folderBytes(dir) };
}

/** A PEFT method: getPeftModel + saveAdapter; the reload check uses PeftModel.fromPretrained. */
function peftMethod(config: () => PeftConfig): (model: tfl.LayersModel) => PreparedMethod {
  return (model) => {
    const peft = getPeftModel(model, config());
    return {
      model: peft.model,
      counts: peft.getNbTrainableParameters(),
      peft,
      save: async (dir) => {
        await peft.saveAdapter(`file://${path.resolve(dir)}`);
        return { dir, ...folderBytes(dir) };
      },
      // The adapted graph holds the adapter and head-copy layers; the base layers it shares are
      // released when the caller disposes the base model.
      dispose: () => peft.model.dispose(),
    };
  };
}

const ADAPTER_SAVED = 'saveAdapter folder: adapter_config.json + adapter_model.safetensors (head copy included)';

export const METHODS: Record<MethodId, MethodSpec> = {
  full: {
    id: 'full',
    label: 'full fine-tuning',
    learningRate: 1e-4,
    description: 'every weight trainable',
    saved: 'all weights (safetensors)',
    prepare(model) {
      for (const layer of model.layers) layer.trainable = true;
      return { model, counts: countParameters(model), save: (dir) => saveTrainableWeights(model, dir), dispose: () => {} };
    },
  },
  lora: {
    id: 'lora',
    label: 'LoRA r=8 (query, value)',
    learningRate: 2e-3,
    description: "getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['query', 'value'], modulesToSave: ['classifier'] }))",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new LoraConfig(LORA_OPTIONS)),
  },
  dora: {
    id: 'dora',
    label: 'DoRA r=8 (query, value)',
    learningRate: 2e-3,
    description: "getPeftModel(model, new LoraConfig({ useDora: true, r: 8, loraAlpha: 16, targetModules: ['query', 'value'], modulesToSave: ['classifier'] }))",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new LoraConfig(DORA_OPTIONS)),
  },
  houlsby: {
    id: 'houlsby',
    label: 'Houlsby adapters (÷16)',
    learningRate: 2e-3,
    description: "getPeftModel(model, new BottleneckConfig({ placement: 'houlsby', reductionFactor: 16, modulesToSave: ['classifier'] })): after attention_output and ffn/output of every block",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new BottleneckConfig(HOULSBY_OPTIONS)),
  },
  pfeiffer: {
    id: 'pfeiffer',
    label: 'Pfeiffer adapters (÷16)',
    learningRate: 2e-3,
    description: "getPeftModel(model, new BottleneckConfig({ placement: 'pfeiffer', reductionFactor: 16, modulesToSave: ['classifier'] })): after ffn/output of every block",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new BottleneckConfig(PFEIFFER_OPTIONS)),
  },
  bitfit: {
    id: 'bitfit',
    label: 'BitFit (all Dense biases)',
    learningRate: 5e-3,
    description: "getPeftModel(model, new BitFitConfig({ targetModules: 'all', modulesToSave: ['classifier'] }))",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new BitFitConfig(BITFIT_OPTIONS)),
  },
  ia3: {
    id: 'ia3',
    label: 'IA³ (key, value, ffn/output input)',
    learningRate: 1e-2,
    description: "getPeftModel(model, new IA3Config({ targetModules: ['key', 'value', 'ffn/output'], feedforwardModules: ['ffn/output'], modulesToSave: ['classifier'] }))",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new IA3Config(IA3_OPTIONS)),
  },
  'prompt-tuning': {
    id: 'prompt-tuning',
    label: 'prompt tuning (20 tokens)',
    learningRate: 1e-2,
    description: "getPeftModel(model, new PromptTuningConfig({ numVirtualTokens: 20, promptTuningInit: 'sampleVocab', modulesToSave: ['classifier'] }))",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new PromptTuningConfig(PROMPT_TUNING_OPTIONS)),
  },
  'prefix-tuning': {
    id: 'prefix-tuning',
    label: 'prefix tuning (20 tokens)',
    learningRate: 1e-2,
    description: "getPeftModel(model, new PrefixTuningConfig({ numVirtualTokens: 20, modulesToSave: ['classifier'] })): key/value prefixes in every attention layer",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new PrefixTuningConfig(PREFIX_TUNING_OPTIONS)),
  },
  'p-tuning': {
    id: 'p-tuning',
    label: 'P-tuning (20 tokens, MLP 128)',
    learningRate: 1e-2,
    description: "getPeftModel(model, new PromptEncoderConfig({ numVirtualTokens: 20, encoderHiddenSize: 128, modulesToSave: ['classifier'] }))",
    saved: ADAPTER_SAVED,
    prepare: peftMethod(() => new PromptEncoderConfig(P_TUNING_OPTIONS)),
  },
  'linear-probe': {
    id: 'linear-probe',
    label: 'linear probe (head only)',
    learningRate: 1e-2,
    description: 'encoder frozen (plain tfjs: trainable=false on every layer but `classifier`)',
    saved: 'head weights (safetensors)',
    prepare(model) {
      for (const layer of model.layers) layer.trainable = layer.name === 'classifier';
      return { model, counts: countParameters(model), save: (dir) => saveTrainableWeights(model, dir), dispose: () => {} };
    },
  },
};
