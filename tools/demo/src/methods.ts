// The fine-tuning methods the demo compares. Each takes a FRESH classifier model (pre-trained
// encoder + `classifier` head) and returns the model to train plus how to save what it learned.
// Later methods (DoRA, adapters, BitFit, IA³, prompt methods) add an entry here.
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import { countParameters, getPeftModel, serializeSafetensors, type PeftModel, type TrainableParameterCount } from '@tfjs-peft/core';
import { LoraConfig } from '@tfjs-peft/lora';

export type MethodId = 'linear-probe' | 'lora' | 'full';
export const ALL_METHODS: readonly MethodId[] = ['linear-probe', 'lora', 'full'];

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
  /** For the LoRA run: the PeftModel (reload checks use its adapter folder). */
  peft?: PeftModel;
}

export interface MethodSpec {
  id: MethodId;
  label: string;
  /** Adam learning rate used unless --lr-<id> overrides it. */
  learningRate: number;
  /** What is trained, for the report. */
  description: string;
  prepare(classifierModel: tfl.LayersModel): PreparedMethod;
}

export const LORA_OPTIONS = {
  r: 8,
  loraAlpha: 16,
  targetModules: ['query', 'value'],
  modulesToSave: ['classifier'],
};

function folderBytes(dir: string): { bytes: number; files: string[] } {
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

/** Writes the trainable weights of `model` as one safetensors file (float32), keyed by variable name. */
async function saveTrainableWeights(model: tfl.LayersModel, dir: string): Promise<SavedAdapter> {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const w of model.trainableWeights) {
    const value = w.read();
    tensors.set(w.name, { shape: value.shape, data: Float32Array.from(await value.data()) });
  }
  writeFileSync(path.join(dir, 'trainable_weights.safetensors'), serializeSafetensors(tensors));
  return { dir, ...folderBytes(dir) };
}

export const METHODS: Record<MethodId, MethodSpec> = {
  'linear-probe': {
    id: 'linear-probe',
    label: 'linear probe (head only)',
    learningRate: 1e-2,
    description: 'encoder frozen (plain tfjs: trainable=false on every layer but `classifier`)',
    prepare(model) {
      for (const layer of model.layers) layer.trainable = layer.name === 'classifier';
      return {
        model,
        counts: countParameters(model),
        save: (dir) => saveTrainableWeights(model, dir),
        dispose: () => {},
      };
    },
  },
  lora: {
    id: 'lora',
    label: 'LoRA r=8 (query, value) + head',
    learningRate: 2e-3,
    description: "getPeftModel(model, new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['query', 'value'], modulesToSave: ['classifier'] }))",
    prepare(model) {
      const peft = getPeftModel(model, new LoraConfig(LORA_OPTIONS));
      return {
        model: peft.model,
        counts: peft.getNbTrainableParameters(),
        peft,
        save: async (dir) => {
          await peft.saveAdapter(`file://${path.resolve(dir)}`);
          return { dir, ...folderBytes(dir) };
        },
        // The adapted graph holds the LoRA and head-copy layers; the base layers it shares are
        // released when the caller disposes the base model.
        dispose: () => peft.model.dispose(),
      };
    },
  },
  full: {
    id: 'full',
    label: 'full fine-tuning',
    learningRate: 1e-4,
    description: 'every weight trainable',
    prepare(model) {
      for (const layer of model.layers) layer.trainable = true;
      return {
        model,
        counts: countParameters(model),
        save: (dir) => saveTrainableWeights(model, dir),
        dispose: () => {},
      };
    },
  },
};
