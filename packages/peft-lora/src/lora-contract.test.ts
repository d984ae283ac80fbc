import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftMethodContract } from '@tfjs-peft/test-utils';
import { LoraConfig } from './index';

// The contract's default base (makeContractMlp) and inputs.
describePeftMethodContract({
  method: 'LoRA',
  attach: (base) => getPeftModel(base, new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['fc1', 'fc2'] })),
  createStore: () => new MemoryAdapterStore(),
  reload: (base, store) => PeftModel.fromPretrained(base, store, { isTrainable: true }),
  identityAtInit: true,
});
