// Soak: IA³ training with adapter switching, merge/unmerge and save/load interleaved;
// tf.memory() must be flat from step 10 to the end. CI: 100 steps per backend; TFJS_PEFT_SOAK=long:
// 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftSoak } from '@tfjs-peft/test-utils';
import { IA3Config } from './index';

describePeftSoak('IA³', 'adapter switching, merge/unmerge and save/load', {
  // A small MLP with named layers.
  randomBiases: true,
  makePeft: (base) => {
    // 'fc2' is a feed-forward module (its vector scales the input, [1, in]); 'fc1' scales the output.
    const peft = getPeftModel(
      base,
      new IA3Config({ targetModules: ['fc1', 'fc2'], feedforwardModules: ['fc2'] }),
    );
    peft.addAdapter('other', new IA3Config({ targetModules: ['fc1', 'fc2'], feedforwardModules: ['fc2'] }));
    return peft;
  },
  secondAdapter: 'other',
  inputUnits: 6,
  outputUnits: 3,
  createStore: () => new MemoryAdapterStore(),
  fromPretrained: (base, store, options) => PeftModel.fromPretrained(base, store, options),
});
