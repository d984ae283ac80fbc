// The methods the page offers. Same configurations as the Node demo and the bench (tools/demo,
// tools/bench): every method trains the `classifier` head beside it (modulesToSave), so the saved
// adapter holds everything the reloaded model needs.
import type { PeftConfig } from '@tfjs-peft/core';
import { LoraConfig } from '@tfjs-peft/lora';
import { BitFitConfig } from '@tfjs-peft/bitfit';
import { IA3Config } from '@tfjs-peft/ia3';
import { BottleneckConfig } from '@tfjs-peft/adapters';

export interface DemoMethod {
  id: string;
  label: string;
  /** Adam learning rate: larger than the Node demo's, as the page trains for a few steps only. */
  learningRate: number;
  config(): PeftConfig;
}

const modulesToSave = ['classifier'];

export const METHODS: readonly DemoMethod[] = [
  {
    id: 'lora',
    label: 'LoRA (r=8, query+value)',
    learningRate: 5e-3,
    config: () => new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['query', 'value'], modulesToSave }),
  },
  {
    id: 'dora',
    label: 'DoRA (r=8, query+value)',
    learningRate: 5e-3,
    config: () =>
      new LoraConfig({ r: 8, loraAlpha: 16, targetModules: ['query', 'value'], useDora: true, modulesToSave }),
  },
  {
    id: 'houlsby',
    label: 'Houlsby adapters (÷16)',
    learningRate: 5e-3,
    config: () => new BottleneckConfig({ placement: 'houlsby', reductionFactor: 16, modulesToSave }),
  },
  {
    id: 'pfeiffer',
    label: 'Pfeiffer adapters (÷16)',
    learningRate: 5e-3,
    config: () => new BottleneckConfig({ placement: 'pfeiffer', reductionFactor: 16, modulesToSave }),
  },
  {
    id: 'bitfit',
    label: 'BitFit (all biases)',
    learningRate: 5e-3,
    config: () => new BitFitConfig({ modulesToSave }),
  },
  {
    id: 'ia3',
    label: 'IA³ (key, value, ffn output)',
    learningRate: 1e-2,
    config: () =>
      new IA3Config({ targetModules: ['key', 'value', 'ffn/output'], feedforwardModules: ['ffn/output'], modulesToSave }),
  },
];

export function methodById(id: string): DemoMethod {
  const method = METHODS.find((m) => m.id === id);
  if (!method) throw new Error(`Unknown method ${id}`);
  return method;
}
