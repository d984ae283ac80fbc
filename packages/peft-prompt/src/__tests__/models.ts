// Small models for the prompt tests: the peft-models encoder (post-norm, learned positions) with a
// classifier head, a bare attention core, an Embedding → LSTM classifier, a Dense-only model.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { buildTransformerEncoder, MultiHeadAttentionCore, withClassifierHead } from '@tfjs-peft/models';

export const VOCAB = 13;
export const WIDTH = 8;

export function encoderClassifier(pooling: 'mean' | 'none' = 'mean', causal = false): tfl.LayersModel {
  const encoder = buildTransformerEncoder({
    vocabSize: VOCAB,
    embeddingSize: WIDTH,
    positionEncoding: 'learned',
    maxPositions: 16,
    blocks: [
      { hiddenSize: WIDTH, numHeads: 2, intermediateSize: 16, activation: 'gelu' },
      { hiddenSize: WIDTH, numHeads: 2, intermediateSize: 16, activation: 'gelu' },
    ],
    normalization: 'post',
    layerNormEpsilon: 1e-6,
    embeddingLayerNorm: true,
    causal,
    pooling,
  });
  return pooling === 'mean' ? withClassifierHead(encoder, 3, { activation: 'softmax' }) : encoder;
}

/** ids [rows, length] int32 (no id 0 except padding) and a mask with the given real lengths. */
export function tokens(lengths: number[], length: number, seed = 1): [tf.Tensor2D, tf.Tensor2D] {
  const ids: number[] = [];
  const mask: number[] = [];
  lengths.forEach((real, r) => {
    for (let i = 0; i < length; i++) {
      ids.push(i < real ? 1 + ((r * 5 + i * 7 + seed * 3) % (VOCAB - 1)) : 0);
      mask.push(i < real ? 1 : 0);
    }
  });
  return [tf.tensor2d(ids, [lengths.length, length], 'int32'), tf.tensor2d(mask, [lengths.length, length])];
}

/** query, key, value [batch, length, 8] and mask [batch, length] → MultiHeadAttentionCore (2 heads). */
export function attentionOnly(causal = false): tfl.LayersModel {
  const q = tfl.input({ shape: [null, WIDTH], name: 'query' });
  const k = tfl.input({ shape: [null, WIDTH], name: 'key' });
  const v = tfl.input({ shape: [null, WIDTH], name: 'value' });
  const m = tfl.input({ shape: [null], name: 'key_mask' });
  const out = new MultiHeadAttentionCore({ name: 'attention/core', numHeads: 2, causal }).apply([
    q,
    k,
    v,
    m,
  ]) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [q, k, v, m], outputs: out, name: 'attention_only' });
}

/** Plain tfjs-layers: Embedding (maskZero) → LSTM → Dense softmax. */
export function lstmClassifier(
  vocab: number,
  dim: number,
  units: number,
  classes: number,
  seed = 7,
): tfl.LayersModel {
  return tfl.sequential({
    name: 'lstm_classifier',
    layers: [
      tfl.layers.embedding({
        name: 'embedding',
        inputDim: vocab,
        outputDim: dim,
        maskZero: true,
        inputShape: [null],
        embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed }),
      }),
      tfl.layers.lstm({
        name: 'lstm',
        units,
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }),
        recurrentInitializer: tfl.initializers.glorotUniform({ seed: seed + 2 }),
      }),
      tfl.layers.dense({
        name: 'head',
        units: classes,
        activation: 'softmax',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 3 }),
      }),
    ],
  });
}

export function denseOnly(): tfl.LayersModel {
  return tfl.sequential({
    name: 'dense_only',
    layers: [tfl.layers.dense({ units: 2, inputShape: [4], name: 'fc' })],
  });
}
