// Soak: LoRA (and DoRA) training with adapter switching, merge/unmerge and save/load interleaved;
// tf.memory() must be flat from step 10 to the end. CI: 100 steps per backend; TFJS_PEFT_SOAK=long:
// 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftSoak } from '@tfjs-peft/test-utils';
import { LoraConfig } from './index';

describePeftSoak('LoRA', 'adapter switching, merge/unmerge and save/load', {
  makePeft: (base) => {
    const targets = ['fc1', 'fc2'];
    const peft = getPeftModel(base, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: targets }));
    peft.addAdapter(
      'dora',
      new LoraConfig({
        r: 2,
        loraAlpha: 4,
        useDora: true,
        targetModules: targets,
        initLoraWeights: 'gaussian',
      }),
    );
    return peft;
  },
  secondAdapter: 'dora',
  inputUnits: 6,
  outputUnits: 3,
  createStore: () => new MemoryAdapterStore(),
  fromPretrained: (base, store, options) => PeftModel.fromPretrained(base, store, options),
});
