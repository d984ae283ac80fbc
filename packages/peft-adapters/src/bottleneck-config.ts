import {
  PeftConfig,
  PeftConfigError,
  rejectUnknownFields,
  requireNumber,
  requireOneOf,
  targetModulesFromJson,
  targetModulesToJson,
  validateTargetModules,
  type TargetModules,
  type TaskType,
} from '@tfjs-peft/core';

/**
 * Where adapters go. On the transformers of @tfjs-peft/models (and any model using their layer
 * names): 'pfeiffer' after each block's feed-forward output projection, 'houlsby' after the
 * attention output projection and after the feed-forward output projection, 'parallel' beside the
 * feed-forward block. `{ after: targets }` inserts one after each named layer of any model.
 */
export type BottleneckPlacement = 'houlsby' | 'pfeiffer' | 'parallel' | { after: TargetModules };
export type BottleneckNonLinearity = 'relu' | 'gelu' | 'swish' | 'tanh';
export type BottleneckLayerNorm = 'before' | 'after' | null;
/** 'identity': up-projection zeros, down-projection small random (a new adapter is exactly the identity); 'random': both random (tests). */
export type BottleneckInit = 'identity' | 'random';

export interface BottleneckConfigOptions {
  placement: BottleneckPlacement;
  /** Bottleneck width = floor(layer width / reductionFactor). Default 16 (Houlsby's and AdapterHub's). */
  reductionFactor?: number;
  nonLinearity?: BottleneckNonLinearity;
  /** Multiplies the adapter's branch; 'learned' makes it a trained scalar initialised to 1. Default 1. */
  scaling?: number | 'learned';
  /** 'before': normalise the bottleneck's input; 'after': normalise the adapter's output (h + Δ), as AdapterHub's ln_after. */
  layerNorm?: BottleneckLayerNorm;
  initWeights?: BottleneckInit;
  modulesToSave?: string[] | null;
  taskType?: TaskType | null;
}

const OPTION_NAMES = [
  'placement',
  'reductionFactor',
  'nonLinearity',
  'scaling',
  'layerNorm',
  'initWeights',
  'modulesToSave',
  'taskType',
] as const;

export const BOTTLENECK_PRESETS = ['houlsby', 'pfeiffer', 'parallel'] as const;
const NON_LINEARITIES = ['relu', 'gelu', 'swish', 'tanh'] as const;

/** Fields an adapter_config.json of type BOTTLENECK may hold. */
const JSON_FIELDS = [
  'peft_type',
  'task_type',
  'base_model_name_or_path',
  'revision',
  'inference_mode',
  'modules_to_save',
  'placement',
  'target_modules',
  'reduction_factor',
  'non_linearity',
  'scaling',
  'layer_norm',
  'init_weights',
];

/**
 * Bottleneck adapters (Houlsby et al. 2019; AdapterHub's configurations as the reference):
 * `h + scaling · up(act(down(LN?(h))))`. `peftType` is `BOTTLENECK`, which is not a Hugging Face PEFT
 * type: the file layout is PEFT's (adapter_config.json + adapter_model.safetensors, keys
 * `base_model.model.<module>.adapter_down.weight` in PyTorch layout), read by this library.
 */
export class BottleneckConfig extends PeftConfig {
  readonly peftType = 'BOTTLENECK';
  readonly placement: BottleneckPlacement;
  readonly reductionFactor: number;
  readonly nonLinearity: BottleneckNonLinearity;
  readonly scaling: number | 'learned';
  readonly layerNorm: BottleneckLayerNorm;
  readonly initWeights: BottleneckInit;

  constructor(options: BottleneckConfigOptions) {
    if (options === null || typeof options !== 'object') {
      throw new PeftConfigError('options', options, "expected an object such as { placement: 'pfeiffer' }");
    }
    rejectUnknownFields('BottleneckConfig', options as unknown as Record<string, unknown>, OPTION_NAMES);
    super(options);
    this.placement = validatePlacement(options.placement);
    this.reductionFactor = requireNumber('reductionFactor', options.reductionFactor ?? 16, 0, Infinity, {
      exclusiveMin: true,
    });
    this.nonLinearity = requireOneOf('nonLinearity', options.nonLinearity ?? 'relu', NON_LINEARITIES);
    const scaling = options.scaling ?? 1;
    this.scaling = scaling === 'learned' ? 'learned' : requireNumber('scaling', scaling);
    const layerNorm = options.layerNorm ?? null;
    this.layerNorm =
      layerNorm === null ? null : requireOneOf('layerNorm', layerNorm, ['before', 'after'] as const);
    this.initWeights = requireOneOf('initWeights', options.initWeights ?? 'identity', [
      'identity',
      'random',
    ] as const);
  }

  toJson(): Record<string, unknown> {
    const json: Record<string, unknown> = {
      ...this.commonJson(),
      placement: typeof this.placement === 'string' ? this.placement : 'after',
      reduction_factor: this.reductionFactor,
      non_linearity: this.nonLinearity,
      scaling: this.scaling,
      layer_norm: this.layerNorm,
      init_weights: this.initWeights,
    };
    // RegExp targets become null, which PeftModel.saveAdapter replaces by the module paths they matched.
    if (typeof this.placement !== 'string') json.target_modules = targetModulesToJson(this.placement.after);
    return json;
  }

  /** Reads an adapter_config.json written by saveAdapter; unknown fields are refused, never ignored. */
  static fromJson(json: Record<string, unknown>): BottleneckConfig {
    if (json.peft_type !== 'BOTTLENECK')
      throw new PeftConfigError('peft_type', json.peft_type, 'expected "BOTTLENECK"');
    rejectUnknownFields('a BOTTLENECK adapter_config.json', json, JSON_FIELDS);
    let placement: BottleneckPlacement;
    if (json.placement === 'after') {
      placement = { after: targetModulesFromJson('target_modules', json.target_modules) };
    } else {
      placement = requireOneOf('placement', json.placement, BOTTLENECK_PRESETS);
      if (json.target_modules != null)
        throw new PeftConfigError(
          'target_modules',
          json.target_modules,
          `must be absent for placement "${placement}"`,
        );
    }
    return new BottleneckConfig({
      placement,
      reductionFactor: json.reduction_factor as number | undefined,
      nonLinearity: json.non_linearity as BottleneckNonLinearity | undefined,
      scaling: json.scaling as number | 'learned' | undefined,
      layerNorm: (json.layer_norm ?? null) as BottleneckLayerNorm,
      initWeights: json.init_weights as BottleneckInit | undefined,
      taskType: (json.task_type ?? null) as TaskType | null,
      modulesToSave: (json.modules_to_save ?? null) as string[] | null,
    });
  }
}

function validatePlacement(value: unknown): BottleneckPlacement {
  if (typeof value === 'string') return requireOneOf('placement', value, BOTTLENECK_PRESETS);
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof RegExp)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === 'after') {
      return { after: validateTargetModules('placement.after', (value as { after: unknown }).after) };
    }
  }
  throw new PeftConfigError(
    'placement',
    value,
    "expected 'houlsby', 'pfeiffer', 'parallel' or { after: <layer names, suffixes, class names or RegExps> }",
  );
}
