import { PeftError } from '@tfjs-peft/core';

/** The model has no layer the prompt can follow (an `Embedding` or a `TokenAndPositionEmbedding` fed by an input). */
export class NoEmbeddingLayerError extends PeftError {
  constructor(
    readonly modelName: string,
    layerSummary: string,
  ) {
    super(
      `Model "${modelName}" has no embedding layer fed by a model input (tf.layers.embedding or ` +
        `TokenAndPositionEmbedding) after which virtual tokens could be inserted. Layers: ${layerSummary}`,
    );
  }
}

/** Prefix tuning needs attention layers (MultiHeadAttentionCore of @tfjs-peft/models); the model has none. */
export class NoAttentionLayerError extends PeftError {
  constructor(readonly modelName: string) {
    super(
      `Model "${modelName}" has no MultiHeadAttentionCore layer: prefix tuning adds key/value prefixes to ` +
        'attention layers (use prompt tuning or P-tuning for models without attention)',
    );
  }
}

/** A config's token_dim / num_layers / num_attention_heads (or a saved prompt) does not fit the model. */
export class TokenDimMismatchError extends PeftError {
  constructor(
    readonly field: string,
    readonly configured: number,
    readonly modelValue: number,
    where: string,
  ) {
    super(`Config field "${field}" is ${configured} but ${where} has ${modelValue}`);
  }
}

/** Prompt methods prepend learned tokens or prefixes: nothing to fold into weights (peft-core's error). */
export { AdapterNotMergeableError as PromptNotMergeableError } from '@tfjs-peft/core';
