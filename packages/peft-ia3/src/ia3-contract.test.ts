import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftMethodContract } from '@tfjs-peft/test-utils';
import { IA3Config } from './index';

// The contract's default base (makeContractMlp) and inputs.
describePeftMethodContract({
  method: 'IA³',
  attach: (base) =>
    getPeftModel(base, new IA3Config({ targetModules: ['fc1', 'fc2'], feedforwardModules: ['fc2'] })),
  createStore: () => new MemoryAdapterStore(),
  reload: (base, store) => PeftModel.fromPretrained(base, store, { isTrainable: true }),
  identityAtInit: true,
});
