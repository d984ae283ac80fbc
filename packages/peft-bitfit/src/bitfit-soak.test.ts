// Soak: BitFit training with adapter switching, merge/unmerge and save/load interleaved;
// tf.memory() must be flat from step 10 to the end. CI: 100 steps per backend; TFJS_PEFT_SOAK=long:
// 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftSoak } from '@tfjs-peft/test-utils';
import { BitFitConfig } from './index';

describePeftSoak('BitFit', 'adapter switching, merge/unmerge and save/load', {
  // A small MLP with non-zero biases (BitFit trains the biases).
  randomBiases: true,
  makePeft: (base) => {
    // Every bias for 'default'; a subset for 'other'.
    const peft = getPeftModel(base, new BitFitConfig());
    peft.addAdapter('other', new BitFitConfig({ targetModules: ['fc1', 'fc2'] }));
    return peft;
  },
  secondAdapter: 'other',
  inputUnits: 6,
  outputUnits: 3,
  createStore: () => new MemoryAdapterStore(),
  fromPretrained: (base, store, options) => PeftModel.fromPretrained(base, store, options),
});
