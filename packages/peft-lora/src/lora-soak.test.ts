// Soak: LoRA (and DoRA) training with adapter switching, merge/unmerge and save/load interleaved;
// tf.memory() must be flat from step 10 to the end. CI: 100 steps per backend; TFJS_PEFT_SOAK=long:
// 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import {
  describeEachBackend,
  expectWeightsBitIdentical,
  runSoak,
  snapshotWeights,
  soakSteps,
} from '@tfjs-peft/test-utils';
import { LoraConfig } from './index';

const STEPS = soakSteps(process.env.TFJS_PEFT_SOAK, 100, 1000);

function makeBase(seed = 1): tfl.LayersModel {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: seed * 10 + s });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'fc1',
        units: 12,
        activation: 'relu',
        inputShape: [6],
        kernelInitializer: init(1),
      }),
      tfl.layers.dense({ name: 'fc2', units: 8, activation: 'tanh', kernelInitializer: init(2) }),
      tfl.layers.dense({ name: 'head', units: 3, kernelInitializer: init(3) }),
    ],
  });
}

describeEachBackend('LoRA soak', () => {
  it(
    `${STEPS} training steps with adapter switching, merge/unmerge and save/load: memory flat from step 10`,
    async () => {
      const report = await runSoak({
        steps: STEPS,
        logEvery: Number(process.env.SOAK_DEBUG ?? 0),
        log: (l) => console.log(l),
        setup: async () => {
          const base = makeBase();
          const baseSnapshot = await snapshotWeights(base);
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
          const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 16 * 6), [16, 6])));
          const y = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 16 * 3), [16, 3])));
          // One optimizer per adapter: Adam keeps its slots by variable position.
          const optimizers = new Map([
            ['default', tf.train.adam(0.01)],
            ['dora', tf.train.adam(0.01)],
          ]);
          const otherBase = makeBase(2);
          const store = new MemoryAdapterStore();
          return {
            trainStep: () => {
              const optimizer = optimizers.get(peft.activeAdapter)!;
              const cost = optimizer.minimize(
                () =>
                  tf.losses.meanSquaredError(
                    y,
                    peft.model.apply(x, { training: true }) as tf.Tensor,
                  ) as tf.Scalar,
                true,
                peft.trainableVariables,
              );
              cost?.dispose();
            },
            actions: [
              {
                name: 'switch adapter',
                every: 3,
                run: () => peft.setAdapter(peft.activeAdapter === 'default' ? 'dora' : 'default'),
              },
              {
                name: 'merge, predict, unmerge',
                every: 4,
                run: async () => {
                  await peft.mergeAdapter([peft.activeAdapter], { safeMerge: true });
                  tf.dispose(peft.model.predict(x) as tf.Tensor);
                  peft.unmergeAdapter();
                },
              },
              {
                name: 'disabled-adapter forward',
                every: 5,
                run: () => peft.withAdapterDisabled(() => tf.dispose(peft.model.predict(x) as tf.Tensor)),
              },
              {
                name: 'save, load on another base, predict, unload',
                every: 7,
                run: async () => {
                  await peft.saveAdapter(store);
                  const loaded = await PeftModel.fromPretrained(otherBase, store, {
                    subfolder: peft.activeAdapter === 'default' ? undefined : 'dora',
                  });
                  tf.dispose(loaded.model.predict(x) as tf.Tensor);
                  loaded.unload();
                },
              },
            ],
            dispose: async () => {
              optimizers.forEach((o) => o.dispose());
              tf.dispose([x, y]);
              peft.unload();
              // Hundreds of steps, merges and saves never wrote the frozen base.
              expectWeightsBitIdentical(baseSnapshot, await snapshotWeights(base));
              base.dispose();
              otherBase.dispose();
            },
          };
        },
      });
      expect(report.actionCounts['save, load on another base, predict, unload']).toBe(
        Math.floor((STEPS - 1) / 7),
      );
      console.log(
        `[lora-soak ${tf.getBackend()}] ${report.steps} steps in ${(report.milliseconds / 1000).toFixed(1)} s; ` +
          `flat from step ${report.flatFrom} at ${report.tensors[report.flatFrom]} tensors / ${report.bytes[report.flatFrom]} bytes; ` +
          `actions: ${JSON.stringify(report.actionCounts)}`,
      );
    },
    STEPS > 100 ? 1_800_000 : 300_000,
  );
});
