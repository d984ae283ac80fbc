// Soak: IA³ training with adapter switching, merge/unmerge and save/load interleaved;
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
import { IA3Config } from './index';

const STEPS = soakSteps(process.env.TFJS_PEFT_SOAK, 100, 1000);

/** A small MLP with named layers. */
function makeBase(seed = 1): tfl.LayersModel {
  const dense = (
    name: string,
    units: number,
    activation: 'relu' | 'tanh' | 'linear',
    s: number,
    inputShape?: number[],
  ) =>
    tfl.layers.dense({
      name,
      units,
      activation,
      inputShape,
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed * 10 + s }),
      biasInitializer: tfl.initializers.randomNormal({ stddev: 0.1, seed: seed * 10 + 5 + s }),
    });
  return tfl.sequential({
    layers: [dense('fc1', 12, 'relu', 1, [6]), dense('fc2', 8, 'tanh', 2), dense('head', 3, 'linear', 3)],
  });
}

describeEachBackend('IA³ soak', () => {
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
          // 'fc2' is a feed-forward module (its vector scales the input, [1, in]); 'fc1' scales the output.
          const peft = getPeftModel(
            base,
            new IA3Config({ targetModules: ['fc1', 'fc2'], feedforwardModules: ['fc2'] }),
          );
          peft.addAdapter(
            'other',
            new IA3Config({ targetModules: ['fc1', 'fc2'], feedforwardModules: ['fc2'] }),
          );
          const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 16 * 6), [16, 6])));
          const y = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 16 * 3), [16, 3])));
          // One optimizer per adapter: Adam keeps its slots by variable position.
          const optimizers = new Map([
            ['default', tf.train.adam(0.01)],
            ['other', tf.train.adam(0.01)],
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
                run: () => peft.setAdapter(peft.activeAdapter === 'default' ? 'other' : 'default'),
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
                    subfolder: peft.activeAdapter === 'default' ? undefined : 'other',
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
        `[ia3-soak ${tf.getBackend()}] ${report.steps} steps in ${(report.milliseconds / 1000).toFixed(1)} s; ` +
          `flat from step ${report.flatFrom} at ${report.tensors[report.flatFrom]} tensors / ${report.bytes[report.flatFrom]} bytes; ` +
          `actions: ${JSON.stringify(report.actionCounts)}`,
      );
    },
    STEPS > 100 ? 1_800_000 : 300_000,
  );
});
