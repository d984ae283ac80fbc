// Soak: prompt-tuning training with adapter switching (prompts of different lengths), refused merges
// and save/load (savePromptAdapter / promptFromPretrained, PEFT's prompt-learning layout) interleaved;
// tf.memory() must be flat from step 10 to the end. Prompts are not mergeable, so a merge attempt must
// be refused without leaving anything behind.
// CI: 100 steps per backend; TFJS_PEFT_SOAK=long: 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, MemoryAdapterStore } from '@tfjs-peft/core';
import {
  describeEachBackend,
  expectWeightsBitIdentical,
  runSoak,
  snapshotWeights,
  soakSteps,
} from '@tfjs-peft/test-utils';
import { tokens, VOCAB, WIDTH } from './__tests__/models';
import {
  loadPromptAdapter,
  promptFromPretrained,
  PromptNotMergeableError,
  PromptTuningConfig,
  savePromptAdapter,
} from './index';

const STEPS = soakSteps(process.env.TFJS_PEFT_SOAK, 100, 1000);

/** Embedding → mean over tokens → Dense softmax: the smallest model with an embedding layer to prompt. */
function makeBase(seed = 1): tfl.LayersModel {
  return tfl.sequential({
    name: 'embedding_classifier',
    layers: [
      tfl.layers.embedding({
        name: 'embedding',
        inputDim: VOCAB,
        outputDim: WIDTH,
        inputShape: [null],
        embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: seed * 10 }),
      }),
      tfl.layers.globalAveragePooling1d({ name: 'pool' }),
      tfl.layers.dense({
        name: 'head',
        units: 3,
        activation: 'softmax',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed * 10 + 1 }),
      }),
    ],
  });
}

describeEachBackend('Prompt tuning soak', () => {
  it(
    `${STEPS} training steps with adapter switching, refused merges and save/load: memory flat from step 10`,
    async () => {
      const report = await runSoak({
        steps: STEPS,
        logEvery: Number(process.env.SOAK_DEBUG ?? 0),
        log: (l) => console.log(l),
        setup: async () => {
          const base = makeBase();
          const baseSnapshot = await snapshotWeights(base);
          const peft = getPeftModel(base, new PromptTuningConfig({ numVirtualTokens: 3 }));
          peft.addAdapter(
            'other',
            new PromptTuningConfig({ numVirtualTokens: 5, promptTuningInit: 'sampleVocab' }),
          );
          const [ids, mask] = tokens([6, 4, 5, 3, 6, 2, 5, 6], 6);
          mask.dispose();
          const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 1, 0, 2, 1, 0], 'int32'), 3));
          // One optimizer per adapter: Adam keeps its slots by variable position.
          const optimizers = new Map([
            ['default', tf.train.adam(0.02)],
            ['other', tf.train.adam(0.02)],
          ]);
          const otherBase = makeBase(2);
          const store = new MemoryAdapterStore('memory://prompt-soak');
          return {
            trainStep: () => {
              const optimizer = optimizers.get(peft.activeAdapter)!;
              const cost = optimizer.minimize(
                () =>
                  tf.losses.softmaxCrossEntropy(
                    labels,
                    tf.log(tf.add(peft.model.apply(ids, { training: true }) as tf.Tensor, 1e-7)),
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
                name: 'merge refused',
                every: 4,
                run: async () => {
                  await expect(peft.mergeAdapter([peft.activeAdapter])).rejects.toThrow(PromptNotMergeableError);
                },
              },
              {
                name: 'disabled-adapter forward',
                every: 5,
                run: () => peft.withAdapterDisabled(() => tf.dispose(peft.model.predict(ids) as tf.Tensor)),
              },
              {
                name: 'save, load both on another base, predict each, unload',
                every: 7,
                run: async () => {
                  await savePromptAdapter(peft, store);
                  const loaded = await promptFromPretrained(otherBase, store);
                  await loadPromptAdapter(loaded, store, 'other', { subfolder: 'other' });
                  tf.dispose(loaded.model.predict(ids) as tf.Tensor);
                  loaded.setAdapter('other');
                  tf.dispose(loaded.model.predict(ids) as tf.Tensor);
                  loaded.unload();
                },
              },
            ],
            dispose: async () => {
              optimizers.forEach((o) => o.dispose());
              tf.dispose([ids, labels]);
              peft.unload();
              // Hundreds of steps and saves never wrote the frozen base.
              expectWeightsBitIdentical(baseSnapshot, await snapshotWeights(base));
              base.dispose();
              otherBase.dispose();
            },
          };
        },
      });
      expect(report.actionCounts['save, load both on another base, predict each, unload']).toBe(
        Math.floor((STEPS - 1) / 7),
      );
      console.log(
        `[prompt-soak ${tf.getBackend()}] ${report.steps} steps in ${(report.milliseconds / 1000).toFixed(1)} s; ` +
          `flat from step ${report.flatFrom} at ${report.tensors[report.flatFrom]} tensors / ${report.bytes[report.flatFrom]} bytes; ` +
          `actions: ${JSON.stringify(report.actionCounts)}`,
      );
    },
    STEPS > 100 ? 1_800_000 : 300_000,
  );
});
