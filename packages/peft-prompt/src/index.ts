// Importing this package registers PROMPT_TUNING, PREFIX_TUNING and P_TUNING with @tfjs-peft/core.
import './prompt-methods';

export {
  PromptTuningConfig,
  PrefixTuningConfig,
  PromptEncoderConfig,
  MAX_ENCODER_HIDDEN_SIZE,
  PromptLearningConfig,
} from './prompt-config';
export type {
  PromptTuningOptions,
  PrefixTuningOptions,
  PromptEncoderOptions,
  PromptLearningOptions,
  PromptTuningInit,
  PromptTokenizer,
  EncoderReparameterizationType,
} from './prompt-config';
export {
  PromptEmbedding,
  PromptAttentionMask,
  PromptOwnerLayer,
  PromptFollowerLayer,
  PROMPT_MODULE,
  PROMPT_STATE_KEY,
} from './prompt-embedding';
export { PrefixAttention, PrefixPositionOffset } from './prefix-attention';
export {
  promptTuningMethod,
  promptEncoderMethod,
  prefixTuningMethod,
  foldPromptEncoders,
  initTokenIds,
  ATTENTION_MASK_INPUT_NAMES,
} from './prompt-methods';
export {
  promptAdapterStore,
  promptFileKeys,
  savePromptAdapter,
  promptFromPretrained,
  loadPromptAdapter,
} from './peft-format';
export {
  NoEmbeddingLayerError,
  NoAttentionLayerError,
  TokenDimMismatchError,
  PromptNotMergeableError,
  PromptModelNotSerializableError,
} from './prompt-errors';
