// Soak: bottleneck-adapter training with adapter switching, stack/average composition of two adapters,
// refused merges and save/load interleaved; tf.memory() must be flat from step 10 to the end.
// Bottleneck adapters are not linear, so there is no merge/unmerge to soak; instead a merge attempt
// must be refused (AdapterNotMergeableError) without leaving anything behind.
// CI: 100 steps per backend; TFJS_PEFT_SOAK=long: 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import * as tf from '@tensorflow/tfjs-core';
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import {
  describeEachBackend,
  expectWeightsBitIdentical,
  runSoak,
  snapshotWeights,
  soakSteps,
} from '@tfjs-peft/test-utils';
import { makeMlp } from './__tests__/support/models';
import { AdapterNotMergeableError, BottleneckConfig, setAdapterComposition } from './index';

const STEPS = soakSteps(process.env.TFJS_PEFT_SOAK, 100, 1000);

describeEachBackend('Bottleneck adapter soak', () => {
  it(
    `${STEPS} training steps with adapter switching, stack/average composition, refused merges and save/load: memory flat from step 10`,
    async () => {
      const report = await runSoak({
        steps: STEPS,
        logEvery: Number(process.env.SOAK_DEBUG ?? 0),
        log: (l) => console.log(l),
        setup: async () => {
          const base = makeMlp(1, 'tanh');
          const baseSnapshot = await snapshotWeights(base);
          const peft = getPeftModel(
            base,
            new BottleneckConfig({ placement: { after: ['fc1', 'fc2'] }, reductionFactor: 2 }),
          );
          peft.addAdapter(
            'other',
            new BottleneckConfig({
              placement: { after: ['fc1', 'fc2'] },
              reductionFactor: 4,
              nonLinearity: 'gelu',
              layerNorm: 'before',
              scaling: 'learned',
              initWeights: 'random',
            }),
          );
          const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 16 * 6), [16, 6])));
          const y = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 16 * 3), [16, 3])));
          // One optimizer per adapter: Adam keeps its slots by variable position.
          const optimizers = new Map([
            ['default', tf.train.adam(0.01)],
            ['other', tf.train.adam(0.01)],
          ]);
          const otherBase = makeMlp(2, 'tanh');
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
                name: 'both active: stack and average forward',
                every: 4,
                run: () => {
                  const active = peft.activeAdapter;
                  peft.setAdapter(['default', 'other']);
                  tf.dispose(peft.model.predict(x) as tf.Tensor);
                  setAdapterComposition(peft, 'average');
                  tf.dispose(peft.model.predict(x) as tf.Tensor);
                  setAdapterComposition(peft, 'stack');
                  peft.setAdapter(active);
                },
              },
              {
                name: 'disabled-adapter forward',
                every: 5,
                run: () => peft.withAdapterDisabled(() => tf.dispose(peft.model.predict(x) as tf.Tensor)),
              },
              {
                name: 'merge refused',
                every: 6,
                run: async () => {
                  await expect(peft.mergeAdapter([peft.activeAdapter], { safeMerge: true })).rejects.toThrow(
                    AdapterNotMergeableError,
                  );
                },
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
              // Hundreds of steps and saves never wrote the frozen base.
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
        `[bottleneck-soak ${tf.getBackend()}] ${report.steps} steps in ${(report.milliseconds / 1000).toFixed(1)} s; ` +
          `flat from step ${report.flatFrom} at ${report.tensors[report.flatFrom]} tensors / ${report.bytes[report.flatFrom]} bytes; ` +
          `actions: ${JSON.stringify(report.actionCounts)}`,
      );
    },
    STEPS > 100 ? 1_800_000 : 300_000,
  );
});
