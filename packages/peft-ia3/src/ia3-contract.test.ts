import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, MemoryAdapterStore, PeftModel } from '@tfjs-peft/core';
import { describePeftMethodContract } from '@tfjs-peft/test-utils';
import { IA3Config } from './index';

describePeftMethodContract({
  method: 'IA³',
  makeBase: () =>
    tfl.sequential({
      layers: [
        tfl.layers.dense({
          name: 'fc1',
          units: 8,
          activation: 'relu',
          inputShape: [5],
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
          biasInitializer: tfl.initializers.constant({ value: 0.1 }),
        }),
        tfl.layers.dense({
          name: 'fc2',
          units: 6,
          activation: 'tanh',
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
          biasInitializer: tfl.initializers.constant({ value: -0.1 }),
        }),
        tfl.layers.dense({
          name: 'head',
          units: 3,
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
        }),
      ],
    }),
  makeInputs: () => tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 20, 1, 'float32'), [4, 5]))),
  attach: (base) =>
    getPeftModel(base, new IA3Config({ targetModules: ['fc1', 'fc2'], feedforwardModules: ['fc2'] })),
  createStore: () => new MemoryAdapterStore(),
  reload: (base, store) => PeftModel.fromPretrained(base, store, { isTrainable: true }),
  identityAtInit: true,
});
