// Soak: LoRA (and DoRA) training with adapter switching, merge/unmerge and save/load interleaved;
// tf.memory() must be flat from step 10 to the end. CI: 100 steps per backend; TFJS_PEFT_SOAK=long:
// 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describeEachBackend, runPeftSoak, SOAK_SAVE_LOAD_ACTION, soakSteps } from '@tfjs-peft/test-utils';
import { LoraConfig } from './index';

const STEPS = soakSteps(process.env.TFJS_PEFT_SOAK, 100, 1000);

describeEachBackend('LoRA soak', () => {
  it(
    `${STEPS} training steps with adapter switching, merge/unmerge and save/load: memory flat from step 10`,
    async () => {
      const report = await runPeftSoak('lora-soak', STEPS, {
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
      expect(report.actionCounts[SOAK_SAVE_LOAD_ACTION]).toBe(Math.floor((STEPS - 1) / 7));
    },
    STEPS > 100 ? 1_800_000 : 300_000,
  );
});
