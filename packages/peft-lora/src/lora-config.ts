import {
  PeftConfig,
  PeftConfigError,
  rejectUnknownFields,
  requireBoolean,
  requireInteger,
  requireIntegerList,
  requireNumber,
  requireNumberRecord,
  requireOneOf,
  targetModulesFromJson,
  targetModulesToJson,
  validateTargetModules,
  type TargetModules,
  type TaskType,
} from '@tfjs-peft/core';

export type LoraInit = true | 'gaussian' | false;
/**
 * Which biases train with the adapter (PEFT's `bias`; `'loraOnly'` is `"lora_only"` on disk):
 * 'none'; 'all' (every bias of the model); 'loraOnly' (the biases of the layers LoRA wraps).
 */
export type LoraBias = 'none' | 'all' | 'loraOnly';

const BIAS_TO_JSON: Record<LoraBias, string> = { none: 'none', all: 'all', loraOnly: 'lora_only' };
const BIAS_FROM_JSON: Record<string, LoraBias> = { none: 'none', all: 'all', lora_only: 'loraOnly' };

export interface LoraConfigOptions {
  /** Which layers get LoRA: names, name suffixes, class names, RegExps, or 'all-dense'. */
  targetModules: TargetModules;
  /** Rank of the update ΔW = scale·A·B. Default 8. */
  r?: number;
  /** Scale numerator: scale = loraAlpha / r (or / √r with useRslora). Default 8, as in PEFT. */
  loraAlpha?: number;
  /** Dropout on the LoRA branch's input, in training only. Default 0. */
  loraDropout?: number;
  /** rsLoRA: scale = loraAlpha / √r, which keeps updates stable at high ranks. */
  useRslora?: boolean;
  /** DoRA: LoRA on the direction, plus a learned magnitude per output unit (Liu et al. 2024). */
  useDora?: boolean;
  /** Only layers whose name carries one of these block indices (e.g. `encoder/layer_3/…`). */
  layersToTransform?: number[] | null;
  /** The name segment before the block index; by default `layer`, `layers`, `h`, `block` or `blocks`. */
  layersPattern?: string | null;
  /** true: A Kaiming-uniform, B zeros (a no-op at first); 'gaussian': A ~ N(0, 1/r²); false: both random (tests). */
  initLoraWeights?: LoraInit;
  /** Per-layer rank: layer-name pattern (a regex on the module path's end) → r. */
  rankPattern?: Record<string, number>;
  /** Per-layer alpha: layer-name pattern → loraAlpha. */
  alphaPattern?: Record<string, number>;
  /** Layers never adapted, same syntax as targetModules. */
  excludeModules?: TargetModules | null;
  /**
   * 'none' (default): biases stay frozen. 'all': every bias of the model trains (PEFT's "all": the
   * `bias` of every layer, and the `beta` of layer/batch normalisation, which PyTorch calls `bias`);
   * 'loraOnly': only the biases of the layers LoRA wraps. The user's bias variables train in place
   * (no copy) and are saved with the adapter under PEFT's keys (`<module>.base_layer.bias` for a
   * wrapped layer, `<module>.bias` otherwise). Unlike PEFT, the value from before the adapter is kept:
   * while the adapter is disabled or inactive the biases hold their base values bit for bit, and
   * deleteAdapter()/unload() give the biases back bit for bit; mergeAndUnload() keeps the trained
   * ones. One adapter per model may train biases, as in PEFT.
   */
  bias?: LoraBias;
  /**
   * PEFT's `fan_in_fan_out`: the base weight is stored [in, out] (GPT-2's Conv1D). A tfjs Dense kernel
   * always is, and PEFT stores lora_A [r, in] and lora_B [out, r] either way (the flag only transposes
   * its B·A before adding it to such a weight), so on our layers it changes nothing; it is accepted
   * and written back so that GPT-2 adapters round-trip. (PEFT resets it to false on nn.Linear targets
   * and ignores it on Embedding and Conv targets.)
   */
  fanInFanOut?: boolean;
  modulesToSave?: string[] | null;
  taskType?: TaskType | null;
}

const OPTION_NAMES = [
  'targetModules',
  'r',
  'loraAlpha',
  'loraDropout',
  'useRslora',
  'useDora',
  'layersToTransform',
  'layersPattern',
  'initLoraWeights',
  'rankPattern',
  'alphaPattern',
  'excludeModules',
  'bias',
  'fanInFanOut',
  'modulesToSave',
  'taskType',
] as const;

/**
 * The module paths LoRA wrapped for a config given RegExp targets (written by inject). They are
 * saved as target_modules: peft-core's fallback (every module of the adapter) would also list the
 * layers whose bias alone an adapter with bias 'all' trains, and PEFT would put LoRA on them.
 */
export const matchedTargetModules = new WeakMap<LoraConfig, string[]>();

/** The largest rank accepted (PEFT has none; a bound keeps a hostile config from asking for gigabytes). */
const MAX_RANK = 1 << 16;

/** Pattern keys are regular expressions: each must compile. */
function requirePatterns(field: string, patterns: Record<string, number>): Record<string, number> {
  for (const pattern of Object.keys(patterns)) {
    try {
      new RegExp(pattern);
    } catch {
      throw new PeftConfigError(`${field}.${pattern}`, pattern, 'is not a valid regular expression');
    }
  }
  return patterns;
}

/** adapter_config.json fields fromJson reads. */
const HANDLED_JSON_FIELDS = new Set([
  'peft_type',
  'target_modules',
  'r',
  'lora_alpha',
  'lora_dropout',
  'use_rslora',
  'use_dora',
  'layers_to_transform',
  'layers_pattern',
  'init_lora_weights',
  'rank_pattern',
  'alpha_pattern',
  'exclude_modules',
  'task_type',
  'modules_to_save',
  'bias',
  'fan_in_fan_out',
]);

/** Descriptive fields that do not change what an adapter computes. */
const IGNORED_METADATA_FIELDS = new Set([
  'base_model_name_or_path',
  'revision',
  'inference_mode',
  'auto_mapping',
  'peft_version',
  'megatron_core',
  'megatron_config',
  'loftq_config',
  // Read only when use_qalora is on, which the check below refuses.
  'qalora_group_size',
]);

/** Hugging Face PEFT's LoraConfig, in camelCase, validated on construction. */
export class LoraConfig extends PeftConfig {
  readonly peftType = 'LORA';
  readonly targetModules: TargetModules;
  readonly r: number;
  readonly loraAlpha: number;
  readonly loraDropout: number;
  readonly useRslora: boolean;
  readonly useDora: boolean;
  readonly layersToTransform: number[] | null;
  readonly layersPattern: string | null;
  readonly initLoraWeights: LoraInit;
  readonly rankPattern: Record<string, number>;
  readonly alphaPattern: Record<string, number>;
  readonly excludeModules: TargetModules | null;
  readonly bias: LoraBias;
  readonly fanInFanOut: boolean;

  constructor(options: LoraConfigOptions) {
    if (options === null || typeof options !== 'object') {
      throw new PeftConfigError(
        'options',
        options,
        'expected an object such as { r: 8, targetModules: [...] }',
      );
    }
    rejectUnknownFields('LoraConfig', options as unknown as Record<string, unknown>, OPTION_NAMES);
    super(options);
    this.targetModules = validateTargetModules('targetModules', options.targetModules);
    this.r = requireInteger('r', options.r ?? 8, 1, MAX_RANK);
    this.loraAlpha = requireNumber('loraAlpha', options.loraAlpha ?? 8, 0, Infinity, { exclusiveMin: true });
    this.loraDropout = requireNumber('loraDropout', options.loraDropout ?? 0, 0, 1);
    if (this.loraDropout === 1) throw new PeftConfigError('loraDropout', 1, 'expected a value below 1');
    this.useRslora = requireBoolean('useRslora', options.useRslora ?? false);
    this.useDora = requireBoolean('useDora', options.useDora ?? false);
    this.layersToTransform =
      options.layersToTransform == null
        ? null
        : requireIntegerList('layersToTransform', options.layersToTransform, 0);
    if (
      options.layersPattern != null &&
      (typeof options.layersPattern !== 'string' || !options.layersPattern)
    ) {
      throw new PeftConfigError(
        'layersPattern',
        options.layersPattern,
        'expected a name segment such as "layer"',
      );
    }
    this.layersPattern = options.layersPattern ?? null;
    const init = options.initLoraWeights ?? true;
    if (init !== true && init !== false && init !== 'gaussian') {
      throw new PeftConfigError('initLoraWeights', init, "expected true, false or 'gaussian'");
    }
    this.initLoraWeights = init;
    this.rankPattern = requirePatterns(
      'rankPattern',
      requireNumberRecord('rankPattern', options.rankPattern ?? {}, 1, true),
    );
    for (const [pattern, rank] of Object.entries(this.rankPattern))
      requireInteger(`rankPattern.${pattern}`, rank, 1, MAX_RANK);
    this.alphaPattern = requirePatterns(
      'alphaPattern',
      requireNumberRecord('alphaPattern', options.alphaPattern ?? {}, Number.MIN_VALUE, false),
    );
    this.excludeModules =
      options.excludeModules == null ? null : validateTargetModules('excludeModules', options.excludeModules);
    this.bias = requireOneOf('bias', options.bias ?? 'none', ['none', 'all', 'loraOnly'] as const);
    this.fanInFanOut = requireBoolean('fanInFanOut', options.fanInFanOut ?? false);
  }

  /** r and alpha for one layer, after rankPattern / alphaPattern (PEFT: the pattern matches the end of the module path). */
  rankAndAlphaFor(moduleName: string): { r: number; alpha: number } {
    const pick = (patterns: Record<string, number>, fallback: number) => {
      for (const [pattern, value] of Object.entries(patterns)) {
        if (new RegExp(`(^|\\.)(?:${pattern})$`).test(moduleName)) return value;
      }
      return fallback;
    };
    return { r: pick(this.rankPattern, this.r), alpha: pick(this.alphaPattern, this.loraAlpha) };
  }

  toJson(): Record<string, unknown> {
    return {
      ...this.commonJson(),
      r: this.r,
      lora_alpha: this.loraAlpha,
      lora_dropout: this.loraDropout,
      target_modules: targetModulesToJson(this.targetModules) ?? matchedTargetModules.get(this) ?? null,
      exclude_modules: this.excludeModules === null ? null : targetModulesToJson(this.excludeModules),
      bias: BIAS_TO_JSON[this.bias],
      use_rslora: this.useRslora,
      use_dora: this.useDora,
      init_lora_weights: this.initLoraWeights,
      rank_pattern: { ...this.rankPattern },
      alpha_pattern: { ...this.alphaPattern },
      fan_in_fan_out: this.fanInFanOut,
      layers_to_transform: this.layersToTransform,
      layers_pattern: this.layersPattern,
    };
  }

  /** Reads PEFT's adapter_config.json. Fields this version does not implement are refused, never ignored. */
  static fromJson(json: Record<string, unknown>): LoraConfig {
    if (json.peft_type !== 'LORA') throw new PeftConfigError('peft_type', json.peft_type, 'expected "LORA"');
    const unsupported: Array<[string, (v: unknown) => boolean]> = [
      ['bias', (v) => v != null && !(typeof v === 'string' && Object.hasOwn(BIAS_FROM_JSON, v))],
      ['init_lora_weights', (v) => v != null && v !== true && v !== false && v !== 'gaussian'],
      ['layers_pattern', (v) => Array.isArray(v) && v.length > 1],
    ];
    for (const [field, isUsed] of unsupported) {
      if (isUsed(json[field])) {
        throw new PeftConfigError(field, json[field], 'is not supported by this version of @tfjs-peft/lora');
      }
    }
    // Any other field PEFT knows and we do not implement (aLoRA, layer replication, QALoRA, trainable
    // tokens, …) must be at its "off" value: loading it otherwise would give silently wrong outputs.
    for (const [field, value] of Object.entries(json)) {
      if (HANDLED_JSON_FIELDS.has(field) || IGNORED_METADATA_FIELDS.has(field)) continue;
      const off =
        value === null ||
        value === false ||
        (Array.isArray(value) && value.length === 0) ||
        (typeof value === 'object' && value !== null && Object.keys(value).length === 0);
      if (!off)
        throw new PeftConfigError(field, value, 'is not supported by this version of @tfjs-peft/lora');
    }
    return new LoraConfig({
      targetModules: targetModulesFromJson('target_modules', json.target_modules),
      r: json.r as number | undefined,
      loraAlpha: json.lora_alpha as number | undefined,
      loraDropout: json.lora_dropout as number | undefined,
      useRslora: json.use_rslora as boolean | undefined,
      useDora: (json.use_dora ?? false) as boolean,
      layersToTransform:
        typeof json.layers_to_transform === 'number'
          ? [json.layers_to_transform]
          : (json.layers_to_transform as number[] | null | undefined),
      layersPattern: Array.isArray(json.layers_pattern)
        ? (json.layers_pattern[0] as string)
        : (json.layers_pattern as string | null | undefined),
      initLoraWeights: (json.init_lora_weights ?? true) as LoraInit,
      rankPattern: (json.rank_pattern ?? {}) as Record<string, number>,
      alphaPattern: (json.alpha_pattern ?? {}) as Record<string, number>,
      excludeModules:
        json.exclude_modules == null ? null : targetModulesFromJson('exclude_modules', json.exclude_modules),
      taskType: (json.task_type ?? null) as TaskType | null,
      modulesToSave: (json.modules_to_save ?? null) as string[] | null,
      bias: json.bias == null ? undefined : BIAS_FROM_JSON[json.bias as string],
      fanInFanOut: (json.fan_in_fan_out ?? false) as boolean,
    });
  }
}
