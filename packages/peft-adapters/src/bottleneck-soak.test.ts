// Soak: bottleneck-adapter training with adapter switching, stack/average composition of two adapters,
// refused merges and save/load interleaved; tf.memory() must be flat from step 10 to the end.
// Bottleneck adapters are not linear, so there is no merge/unmerge to soak; instead a merge attempt
// must be refused (AdapterNotMergeableError) without leaving anything behind.
// CI: 100 steps per backend; TFJS_PEFT_SOAK=long: 1,000 steps (TFJS_PEFT_SOAK=<n>: n steps).
import * as tf from '@tensorflow/tfjs-core';
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftSoak } from '@tfjs-peft/test-utils';
import { makeMlp } from './__tests__/support/models';
import { AdapterNotMergeableError, BottleneckConfig, setAdapterComposition } from './index';

describePeftSoak(
  'Bottleneck adapter',
  'adapter switching, stack/average composition, refused merges and save/load',
  {
    makeBase: (seed) => makeMlp(seed, 'tanh'),
    makePeft: (base) => {
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
      return peft;
    },
    secondAdapter: 'other',
    // No merge/unmerge (not linear): both adapters active in turn instead …
    mergeActions: ({ peft, x }) => [
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
    ],
    // … and a merge attempt must be refused.
    extraActions: ({ peft }) => [
      {
        name: 'merge refused',
        every: 6,
        run: async () => {
          await expect(peft.mergeAdapter([peft.activeAdapter], { safeMerge: true })).rejects.toThrow(
            AdapterNotMergeableError,
          );
        },
      },
    ],
    inputUnits: 6,
    outputUnits: 3,
    createStore: () => new MemoryAdapterStore(),
    fromPretrained: (base, store, options) => PeftModel.fromPretrained(base, store, options),
  },
);
