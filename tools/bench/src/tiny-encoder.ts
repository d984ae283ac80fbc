// A tiny USE-lite-shaped encoder (buildTransformerEncoder + classifier head) and a batch for it,
// shared by the bench's tests. Block 0 attends at width 4 (its embedding width, projected to 6 by a
// residual projection), block 1 at 6, as USE lite attends at 256, then 512. Sizes chosen so that no
// activation or input-gradient shape ([BATCH·LENGTH, width], [BATCH, width]) equals a kernel shape:
// a matMul whose output has a frozen kernel's shape is that kernel's gradient.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  buildTransformerEncoder,
  withClassifierHead,
  type TransformerEncoderConfig,
} from '@tfjs-peft/models';

export const TINY_BATCH = 3;
export const TINY_LENGTH = 5;
export const TINY_VOCAB = 11;
/** The attention widths of block 0 and block 1. */
export const TINY_ATTENTION_WIDTHS = [4, 6];

export const TINY_ENCODER_CONFIG: TransformerEncoderConfig = {
  vocabSize: TINY_VOCAB,
  embeddingSize: 4,
  positionEncoding: 'sinusoidal',
  maxPositions: 16,
  tokenScale: 2,
  blocks: [
    { hiddenSize: 6, numHeads: 2, attentionSize: 4, intermediateSize: 8 },
    { hiddenSize: 6, numHeads: 3, intermediateSize: 8 },
  ],
  normalization: 'pre',
  layerNormEpsilon: 1e-6,
  pooling: 'mean',
  pooler: { units: 6, activation: 'tanh' },
  l2Normalize: true,
};

export function buildTinyClassifier(numClasses: number): tfl.LayersModel {
  return withClassifierHead(buildTransformerEncoder(TINY_ENCODER_CONFIG), numClasses);
}

/** Token ids [BATCH, LENGTH] and an attention mask with one padded position in every other row. */
export function tinyInputs(): { ids: tf.Tensor2D; mask: tf.Tensor2D } {
  return tf.tidy(() => ({
    ids: tf.tensor2d(
      Array.from({ length: TINY_BATCH * TINY_LENGTH }, (_, i) => (i * 7) % TINY_VOCAB),
      [TINY_BATCH, TINY_LENGTH],
      'int32',
    ),
    mask: tf.tensor2d(
      Array.from({ length: TINY_BATCH * TINY_LENGTH }, (_, i) =>
        i % TINY_LENGTH < TINY_LENGTH - (i % 2) ? 1 : 0,
      ),
      [TINY_BATCH, TINY_LENGTH],
    ),
  }));
}
