import {
  PeftConfig,
  PeftConfigError,
  rejectUnknownFields,
  requireBoolean,
  requireInteger,
  requireNumber,
  requireOneOf,
  type TaskType,
} from '@tfjs-peft/core';

/** Token ids for a text: a function, or an object with `encode` (e.g. a tokenizer of @tfjs-peft/models). */
export type PromptTokenizer =
  | ((text: string) => readonly number[])
  | { encode(text: string): readonly number[] | { ids: readonly number[] } };

export interface PromptLearningOptions {
  /** Number of virtual tokens (≥ 1). */
  numVirtualTokens: number;
  /** Width of a virtual token; default: read from the model (embedding width / attention width). */
  tokenDim?: number | null;
  /** Number of attention layers; default: read from the model. */
  numLayers?: number | null;
  numAttentionHeads?: number | null;
  taskType?: TaskType | null;
  modulesToSave?: string[] | null;
}

const COMMON_JSON = [
  'peft_type',
  'task_type',
  'base_model_name_or_path',
  'revision',
  'inference_mode',
  'modules_to_save',
  'auto_mapping',
  'peft_version',
  'num_virtual_tokens',
  'token_dim',
  'num_transformer_submodules',
  'num_attention_heads',
  'num_layers',
];

function optionalInteger(field: string, value: unknown, min: number, max?: number): number | null {
  return value == null ? null : requireInteger(field, value, min, max);
}

/**
 * Largest `encoder_hidden_size` accepted (a prompt encoder's hidden width: PEFT's default is the
 * model's width, 8192 for the largest common LLMs). A hostile adapter_config.json must not be able to
 * ask for an MLP of hidden² parameters beyond any real model.
 */
export const MAX_ENCODER_HIDDEN_SIZE = 16384;

/**
 * Fields of Hugging Face PEFT's PromptLearningConfig. `tokenDim`, `numLayers` and
 * `numAttentionHeads` may be left out: attaching the prompt fills them from the model (as PEFT
 * does), and a value given that the model contradicts is a TokenDimMismatchError.
 */
export abstract class PromptLearningConfig extends PeftConfig {
  readonly numVirtualTokens: number;
  tokenDim: number | null;
  numLayers: number | null;
  numAttentionHeads: number | null;

  protected constructor(options: PromptLearningOptions) {
    const taskType = options.taskType ?? null;
    // PEFT adds the sequence-classification heads to modules_to_save; the method keeps those present.
    const modulesToSave =
      taskType === 'SEQ_CLS'
        ? [...new Set([...(options.modulesToSave ?? []), 'classifier', 'score'])]
        : options.modulesToSave == null
          ? null
          : [...new Set(options.modulesToSave)];
    super({ taskType, modulesToSave });
    this.numVirtualTokens = requireInteger('numVirtualTokens', options.numVirtualTokens, 1, 1 << 16);
    this.tokenDim = optionalInteger('tokenDim', options.tokenDim, 1);
    this.numLayers = optionalInteger('numLayers', options.numLayers, 1);
    this.numAttentionHeads = optionalInteger('numAttentionHeads', options.numAttentionHeads, 1);
  }

  protected promptJson(): Record<string, unknown> {
    return {
      ...this.commonJson(),
      auto_mapping: null,
      num_virtual_tokens: this.numVirtualTokens,
      token_dim: this.tokenDim,
      num_transformer_submodules: 1,
      num_attention_heads: this.numAttentionHeads,
      num_layers: this.numLayers,
    };
  }

  protected static commonFromJson(
    json: Record<string, unknown>,
    extra: readonly string[],
    name: string,
  ): PromptLearningOptions {
    rejectUnknownFields(name, json, [...COMMON_JSON, ...extra]);
    if (json.num_transformer_submodules != null && json.num_transformer_submodules !== 1) {
      throw new PeftConfigError(
        'num_transformer_submodules',
        json.num_transformer_submodules,
        'only 1 (encoder-only or decoder-only models) is implemented; encoder-decoder prompts are not',
      );
    }
    return {
      numVirtualTokens: json.num_virtual_tokens as number,
      tokenDim: json.token_dim as number | null,
      numLayers: json.num_layers as number | null,
      numAttentionHeads: json.num_attention_heads as number | null,
      taskType: (json.task_type as TaskType | null) ?? null,
      // PEFT may list a module twice (it stores a set and re-adds the task's heads).
      modulesToSave: Array.isArray(json.modules_to_save) ? (json.modules_to_save as string[]) : null,
    };
  }
}

// ------------------------------------------------------------------ prompt tuning

export type PromptTuningInit = 'random' | 'text' | 'sampleVocab';
const INIT_JSON: Record<PromptTuningInit, string> = {
  random: 'RANDOM',
  text: 'TEXT',
  sampleVocab: 'SAMPLE_VOCAB',
};

export interface PromptTuningOptions extends PromptLearningOptions {
  /** 'random' (N(0, 1), PEFT's default), 'text' (embeddings of `promptTuningInitText`), 'sampleVocab' (embeddings of random vocabulary tokens). */
  promptTuningInit?: PromptTuningInit;
  promptTuningInitText?: string | null;
  /** Turns `promptTuningInitText` into token ids (required for 'text'); never saved. */
  tokenizer?: PromptTokenizer | null;
  /** Saved as PEFT's `tokenizer_name_or_path` (informational). */
  tokenizerNameOrPath?: string | null;
}

/** Prompt tuning (Lester et al. 2021): `numVirtualTokens` learned embeddings prepended after the embedding layer. */
export class PromptTuningConfig extends PromptLearningConfig {
  readonly peftType = 'PROMPT_TUNING';
  readonly promptTuningInit: PromptTuningInit;
  readonly promptTuningInitText: string | null;
  readonly tokenizer: PromptTokenizer | null;
  readonly tokenizerNameOrPath: string | null;

  constructor(options: PromptTuningOptions) {
    super(options);
    this.promptTuningInit = requireOneOf('promptTuningInit', options.promptTuningInit ?? 'random', [
      'random',
      'text',
      'sampleVocab',
    ] as const);
    this.promptTuningInitText = options.promptTuningInitText ?? null;
    this.tokenizer = options.tokenizer ?? null;
    this.tokenizerNameOrPath = options.tokenizerNameOrPath ?? null;
    if (this.promptTuningInit === 'text') {
      if (typeof this.promptTuningInitText !== 'string' || this.promptTuningInitText.length === 0) {
        throw new PeftConfigError(
          'promptTuningInitText',
          options.promptTuningInitText,
          "a non-empty text is required with promptTuningInit 'text'",
        );
      }
      const t = this.tokenizer as unknown;
      if (typeof t !== 'function' && !(t && typeof (t as { encode?: unknown }).encode === 'function')) {
        throw new PeftConfigError(
          'tokenizer',
          options.tokenizer,
          "promptTuningInit 'text' needs a tokenizer: (text) => ids, or { encode(text) }",
        );
      }
    }
  }

  toJson(): Record<string, unknown> {
    return {
      ...this.promptJson(),
      prompt_tuning_init: INIT_JSON[this.promptTuningInit],
      prompt_tuning_init_text: this.promptTuningInitText,
      tokenizer_name_or_path: this.tokenizerNameOrPath,
      tokenizer_kwargs: null,
    };
  }

  static fromJson(json: Record<string, unknown>): PromptTuningConfig {
    const common = PromptLearningConfig.commonFromJson(
      json,
      ['prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path', 'tokenizer_kwargs'],
      'PromptTuningConfig',
    );
    const init = requireOneOf('prompt_tuning_init', json.prompt_tuning_init ?? 'RANDOM', [
      'RANDOM',
      'TEXT',
      'SAMPLE_VOCAB',
    ] as const);
    // A loaded prompt's values come from the file: the initialisation is recorded, not re-run.
    return new PromptTuningConfig({
      ...common,
      promptTuningInit: 'random',
      promptTuningInitText: (json.prompt_tuning_init_text as string | null) ?? null,
      tokenizerNameOrPath: (json.tokenizer_name_or_path as string | null) ?? null,
    }).withInit(init);
  }

  private withInit(init: 'RANDOM' | 'TEXT' | 'SAMPLE_VOCAB'): this {
    const byJson = Object.entries(INIT_JSON).find(([, v]) => v === init)![0] as PromptTuningInit;
    (this as { promptTuningInit: PromptTuningInit }).promptTuningInit = byJson;
    return this;
  }
}

// ------------------------------------------------------------------ prefix tuning

export interface PrefixTuningOptions extends PromptLearningOptions {
  /** Reparameterise the prefix by an MLP (embedding → dense → tanh → dense), as PEFT's `prefix_projection`. */
  prefixProjection?: boolean;
  /** Hidden width of that MLP; default tokenDim. */
  encoderHiddenSize?: number | null;
  /**
   * Key/value width of each attention layer, for models whose attention widths differ per block
   * (the Universal Sentence Encoder lite: 256, then 512); default: read from the model. Null when
   * they are all `tokenDim` (PEFT's case). Saved as `tfjs_peft_layer_token_dims`, our extension of
   * PEFT's config: the prefix is then [n, Σ 2·widthᵢ], layer i's key then value columns in turn.
   */
  layerTokenDims?: readonly number[] | null;
  /**
   * PEFT's `init_weights`: null (default) initialises the prefix at random (N(0, 1), or the MLP's
   * default init with `prefixProjection`); 'zero' makes the prefix zero (with `prefixProjection`, the
   * MLP's last layer), PEFT's no-op start.
   */
  initWeights?: 'zero' | null;
}

/** Prefix tuning (Li & Liang 2021): learned key and value prefixes for every attention layer. */
export class PrefixTuningConfig extends PromptLearningConfig {
  readonly peftType = 'PREFIX_TUNING';
  readonly prefixProjection: boolean;
  encoderHiddenSize: number | null;
  layerTokenDims: number[] | null;
  readonly initWeights: 'zero' | null;

  constructor(options: PrefixTuningOptions) {
    super(options);
    this.prefixProjection = requireBoolean('prefixProjection', options.prefixProjection ?? false);
    this.encoderHiddenSize = optionalInteger(
      'encoderHiddenSize',
      options.encoderHiddenSize,
      1,
      MAX_ENCODER_HIDDEN_SIZE,
    );
    this.initWeights = options.initWeights == null ? null : requireOneOf('initWeights', options.initWeights, ['zero'] as const);
    const dims = options.layerTokenDims;
    if (dims != null && (!Array.isArray(dims) || dims.length === 0))
      throw new PeftConfigError('layerTokenDims', dims, 'expected a non-empty list of widths, one per attention layer');
    this.layerTokenDims = dims == null ? null : dims.map((d, i) => requireInteger(`layerTokenDims[${i}]`, d, 1));
  }

  toJson(): Record<string, unknown> {
    return {
      ...this.promptJson(),
      encoder_hidden_size: this.encoderHiddenSize,
      prefix_projection: this.prefixProjection,
      // Our extension, written only for per-layer widths: PEFT's own files stay as PEFT writes them.
      ...(this.layerTokenDims ? { tfjs_peft_layer_token_dims: this.layerTokenDims } : {}),
      // PEFT ≥ 0.21's field; written only when set, so that older PEFT versions still read the file.
      ...(this.initWeights ? { init_weights: this.initWeights } : {}),
    };
  }

  static fromJson(json: Record<string, unknown>): PrefixTuningConfig {
    const common = PromptLearningConfig.commonFromJson(
      json,
      ['encoder_hidden_size', 'prefix_projection', 'tfjs_peft_layer_token_dims', 'init_weights'],
      'PrefixTuningConfig',
    );
    const initWeights = json.init_weights;
    if (initWeights != null && initWeights !== 'zero')
      throw new PeftConfigError('init_weights', initWeights, 'expected null (random, PEFT\'s default) or "zero"');
    return new PrefixTuningConfig({
      ...common,
      initWeights: initWeights as 'zero' | null | undefined,
      prefixProjection: (json.prefix_projection as boolean | undefined) ?? false,
      encoderHiddenSize: (json.encoder_hidden_size as number | null) ?? null,
      layerTokenDims: (json.tfjs_peft_layer_token_dims as number[] | null | undefined) ?? null,
    });
  }
}

// ------------------------------------------------------------------ P-tuning

export type EncoderReparameterizationType = 'MLP' | 'LSTM';

export interface PromptEncoderOptions extends PromptLearningOptions {
  encoderReparameterizationType?: EncoderReparameterizationType;
  /** Hidden width of the prompt encoder; default tokenDim. */
  encoderHiddenSize?: number | null;
  /** LSTM layers (PEFT's `encoder_num_layers`, default 2). */
  encoderNumLayers?: number;
  /** Dropout between LSTM layers; only 0 is implemented. */
  encoderDropout?: number;
}

/** P-tuning (Liu et al. 2021): a prompt encoder (MLP, or bidirectional LSTM + MLP) producing the virtual tokens. */
export class PromptEncoderConfig extends PromptLearningConfig {
  readonly peftType = 'P_TUNING';
  readonly encoderReparameterizationType: EncoderReparameterizationType;
  encoderHiddenSize: number | null;
  readonly encoderNumLayers: number;
  readonly encoderDropout: number;

  constructor(options: PromptEncoderOptions) {
    super(options);
    this.encoderReparameterizationType = requireOneOf(
      'encoderReparameterizationType',
      options.encoderReparameterizationType ?? 'MLP',
      ['MLP', 'LSTM'] as const,
    );
    this.encoderHiddenSize = optionalInteger(
      'encoderHiddenSize',
      options.encoderHiddenSize,
      1,
      MAX_ENCODER_HIDDEN_SIZE,
    );
    this.encoderNumLayers = requireInteger('encoderNumLayers', options.encoderNumLayers ?? 2, 1, 64);
    this.encoderDropout = requireNumber('encoderDropout', options.encoderDropout ?? 0, 0, 0);
  }

  toJson(): Record<string, unknown> {
    return {
      ...this.promptJson(),
      encoder_reparameterization_type: this.encoderReparameterizationType,
      encoder_hidden_size: this.encoderHiddenSize,
      encoder_num_layers: this.encoderNumLayers,
      encoder_dropout: this.encoderDropout,
    };
  }

  static fromJson(json: Record<string, unknown>): PromptEncoderConfig {
    const common = PromptLearningConfig.commonFromJson(
      json,
      ['encoder_reparameterization_type', 'encoder_hidden_size', 'encoder_num_layers', 'encoder_dropout'],
      'PromptEncoderConfig',
    );
    return new PromptEncoderConfig({
      ...common,
      encoderReparameterizationType:
        (json.encoder_reparameterization_type as EncoderReparameterizationType) ?? 'MLP',
      encoderHiddenSize: (json.encoder_hidden_size as number | null) ?? null,
      encoderNumLayers: (json.encoder_num_layers as number | undefined) ?? 2,
      encoderDropout: (json.encoder_dropout as number | undefined) ?? 0,
    });
  }
}
