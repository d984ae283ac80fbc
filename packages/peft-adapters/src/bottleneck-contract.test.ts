import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftMethodContract } from '@tfjs-peft/test-utils';
import { BottleneckConfig } from './index';

// The contract's default base (makeContractMlp) and inputs.
describePeftMethodContract({
  method: 'bottleneck adapters',
  attach: (base) =>
    getPeftModel(base, new BottleneckConfig({ placement: { after: ['fc1', 'fc2'] }, reductionFactor: 2 })),
  createStore: () => new MemoryAdapterStore(),
  reload: (base, store) => PeftModel.fromPretrained(base, store, { isTrainable: true }),
  identityAtInit: true,
});
