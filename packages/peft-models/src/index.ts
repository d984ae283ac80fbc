// Layers (registered with tf.serialization: saveable and loadable).
export { TokenAndPositionEmbedding } from './layers/token-and-position-embedding';
export { MultiHeadAttentionCore } from './layers/multi-head-attention-core';
export { LayerNorm } from './layers/layer-norm';
export { MaskedMeanPooling } from './layers/masked-mean-pooling';
export { L2Normalize } from './layers/l2-normalize';
export { SplitLastAxis } from './layers/split-last-axis';
export { TiedEmbeddingHead } from './layers/tied-embedding-head';
export { GeluNewAlias } from './layers/gelu-new-alias';

// Ops.
export { embeddingLookup } from '@tfjs-peft/core';
export { multiHeadAttention, causalBias, MASKED_LOGIT } from './ops/multi-head-attention';
export { sinusoidalPositions } from './ops/sinusoidal-positions';

// Transformer encoder builder.
export { buildTransformerEncoder, inputNames } from './encoder/build-transformer-encoder';
export { layerNames, gpt2LayerNames, layerNamesFor, blockPrefix } from './encoder/layer-names';
export { withClassifierHead } from './classifier-head';
export { enableGradientCheckpointing } from './gradient-checkpointing';

// Universal Sentence Encoder lite.
export {
  loadUniversalSentenceEncoderLite,
  universalSentenceEncoderLiteFromArtifacts,
  useLiteConfigFromWeights,
  mapUseLiteWeights,
} from './use-lite/load-universal-sentence-encoder-lite';
export { universalSentenceEncoderLiteConfig } from './use-lite/use-lite-config';
export { SentencePieceTokenizer } from './use-lite/sentence-piece-tokenizer';

export type { TokenAndPositionEmbeddingArgs, PositionEncoding } from './layers/token-and-position-embedding';
export type { MultiHeadAttentionCoreArgs } from './layers/multi-head-attention-core';
export type { LayerNormArgs } from './layers/layer-norm';
export type { L2NormalizeArgs } from './layers/l2-normalize';
export type { SplitLastAxisArgs } from './layers/split-last-axis';
export type { TiedEmbeddingHeadArgs } from './layers/tied-embedding-head';
export type { TransformerLayerNames } from './encoder/layer-names';
export type { LayerArgs } from './layers/layer-args';
export type { MultiHeadAttentionOptions } from './ops/multi-head-attention';
export type { TransformerEncoderConfig, TransformerBlockConfig } from './encoder/transformer-encoder-config';
export type { ClassifierHeadOptions } from './classifier-head';
export type {
  UniversalSentenceEncoderLite,
  UniversalSentenceEncoderLiteOptions,
  UniversalSentenceEncoderLiteArtifacts,
  GraphModelJson,
} from './use-lite/load-universal-sentence-encoder-lite';
export type { EncodedBatch, Vocabulary } from './use-lite/sentence-piece-tokenizer';

// Hugging Face BERT checkpoints (config.json + model.safetensors).
export {
  bertFromHuggingFace,
  loadBert,
  buildBertForSequenceClassification,
  loadBertWeights,
  bertEncoderConfig,
  FirstTokenPooling,
} from './huggingface/load-bert';
export type { HuggingFaceBertConfig } from './huggingface/load-bert';

// Hugging Face GPT-2 checkpoints (config.json + model.safetensors).
export {
  loadGpt2,
  gpt2FromHuggingFace,
  buildGpt2LMHeadModel,
  loadGpt2Weights,
  gpt2EncoderConfig,
} from './huggingface/load-gpt2';
export type { HuggingFaceGpt2Config } from './huggingface/load-gpt2';

// Reading Hugging Face checkpoint folders (bounded reads through the adapter stores).
export { readHuggingFaceCheckpoint, CheckpointWeightPlan } from './huggingface/checkpoint';
export type { CheckpointFiles, CheckpointReadOptions, TensorSource } from './huggingface/checkpoint';
