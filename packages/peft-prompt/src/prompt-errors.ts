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

/**
 * `model.save()` / `toJSON()` of a model with a prompt attached: the prompt layers hold references to
 * the model's own layers and adapters that tfjs' layer serialisation cannot express. Save the base
 * model (after `peft.unload()`) and the adapter (`peft.saveAdapter`) separately.
 */
export class PromptModelNotSerializableError extends PeftError {
  constructor(readonly layerName: string) {
    super(
      `Layer "${layerName}" (a prompt adapter) cannot be serialised by tfjs: model.save()/toJSON() of a ` +
        'prompt-adapted model is not supported. Save the adapter with peft.saveAdapter(location) (a few KB, ' +
        "Hugging Face PEFT's format) and the base model with peft.unload().save(...); reload with " +
        'PeftModel.fromPretrained(await tf.loadLayersModel(...), location). mergeAndUnload() does not apply: ' +
        'prompts are not a change of any weight.',
    );
  }
}

/** Prompt methods prepend learned tokens or prefixes: nothing to fold into weights (peft-core's error). */
export { AdapterNotMergeableError as PromptNotMergeableError } from '@tfjs-peft/core';
