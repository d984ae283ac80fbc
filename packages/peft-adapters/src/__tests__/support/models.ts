// Small models for the bottleneck-adapter tests: an MLP, a CNN and the peft-models transformer.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { buildTransformerEncoder } from '@tfjs-peft/models';
import type { PeftModel } from '@tfjs-peft/core';

/** input [6] → fc1 (10, act) → fc2 (8, act) → head (3, linear); functional. */
export function makeMlp(seed = 1, hidden: 'relu' | 'tanh' = 'relu'): tfl.LayersModel {
  const dense = (name: string, units: number, activation: 'relu' | 'tanh' | 'linear', s: number) =>
    tfl.layers.dense({
      name,
      units,
      activation,
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed * 10 + s }),
      biasInitializer: tfl.initializers.randomNormal({ stddev: 0.1, seed: seed * 10 + s + 5 }),
    });
  const input = tfl.input({ shape: [6] });
  const h1 = dense('fc1', 10, hidden, 1).apply(input) as tfl.SymbolicTensor;
  const h2 = dense('fc2', 8, hidden, 2).apply(h1) as tfl.SymbolicTensor;
  const out = dense('head', 3, 'linear', 3).apply(h2) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out, name: 'mlp' });
}

export const MLP_BASE_PARAMS = 6 * 10 + 10 + 10 * 8 + 8 + 8 * 3 + 3;

/** input [6, 6, 3] → conv1 (8 channels) → conv2 (8) → flatten → head (3); Sequential. */
export function makeCnn(): tfl.LayersModel {
  return tfl.sequential({
    name: 'cnn',
    layers: [
      tfl.layers.conv2d({
        name: 'conv1',
        filters: 8,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
        inputShape: [6, 6, 3],
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
      }),
      tfl.layers.conv2d({
        name: 'conv2',
        filters: 8,
        kernelSize: 3,
        strides: 2,
        activation: 'relu',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }),
      }),
      tfl.layers.flatten({ name: 'flatten' }),
      tfl.layers.dense({
        name: 'head',
        units: 3,
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }),
      }),
    ],
  });
}

/** Bottleneck parameters of one adapter on a layer of this width: down, up and their biases. */
export function adapterParams(
  width: number,
  bottleneck: number,
  { layerNorm = false, learnedScaling = false } = {},
): number {
  return 2 * width * bottleneck + bottleneck + width + (layerNorm ? 2 * width : 0) + (learnedScaling ? 1 : 0);
}

export function encoder(
  width: number,
  blocks = 2,
  intermediateSize = 2 * width,
  normalization: 'pre' | 'post' = 'pre',
) {
  return buildTransformerEncoder({
    vocabSize: 11,
    embeddingSize: width,
    positionEncoding: 'learned',
    maxPositions: 4,
    blocks: Array.from({ length: blocks }, () => ({ hiddenSize: width, numHeads: 2, intermediateSize })),
    normalization,
    layerNormEpsilon: 1e-6,
    embeddingLayerNorm: normalization === 'post',
    pooling: 'mean',
  });
}

export function mlpInputs(rows = 5): tf.Tensor2D {
  return tf.tidy(() => tf.sin(tf.reshape(tf.range(0, rows * 6, 1, 'float32'), [rows, 6])) as tf.Tensor2D);
}

export function cnnInputs(rows = 2): tf.Tensor4D {
  return tf.tidy(
    () => tf.cos(tf.reshape(tf.range(0, rows * 108, 1, 'float32'), [rows, 6, 6, 3])) as tf.Tensor4D,
  );
}

/** token ids [rows, 4] (int32) and an attention mask with some padding. */
export function encoderInputs(rows = 2): [tf.Tensor, tf.Tensor] {
  const ids = tf.tensor2d(
    Array.from({ length: rows * 4 }, (_, i) => (i * 7 + 3) % 11),
    [rows, 4],
    'int32',
  );
  const mask = tf.tensor2d(
    Array.from({ length: rows * 4 }, (_, i) => (i % 4 === 3 && (i >> 2) % 2 === 1 ? 0 : 1)),
    [rows, 4],
  );
  return [ids, mask];
}

export function predict(model: tfl.LayersModel, x: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return model.predict(x) as tf.Tensor;
}

export function disposeAll(peft: PeftModel | null, base: tfl.LayersModel): void {
  if (peft && peft.activeAdapters.length) peft.unload();
  base.dispose();
}

/** Largest |a − b| as a number. */
export async function maxAbsDifference(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const d = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))));
  const value = (await d.data())[0];
  d.dispose();
  return value;
}
