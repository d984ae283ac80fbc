import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftMethodContract } from '@tfjs-peft/test-utils';
import { BitFitConfig } from './index';

// The contract's default base (makeContractMlp) and inputs.
describePeftMethodContract({
  method: 'BitFit',
  attach: (base) => getPeftModel(base, new BitFitConfig({})),
  createStore: () => new MemoryAdapterStore(),
  reload: (base, store) => PeftModel.fromPretrained(base, store, { isTrainable: true }),
  identityAtInit: true,
});
