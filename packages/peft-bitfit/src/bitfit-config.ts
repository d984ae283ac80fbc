import {
  PeftConfig,
  PeftConfigError,
  rejectUnknownFields,
  requireBoolean,
  requireOneOf,
  targetModulesFromJson,
  targetModulesToJson,
  validateTargetModules,
  type TargetModules,
  type TaskType,
} from '@tfjs-peft/core';

/** `'all'`: every bias of the model; `'paper'`: Ben Zaken et al.'s strongest subset (query + intermediate). */
export type BitFitSubset = 'all' | 'paper';

export interface BitFitConfigOptions {
  /** Layers whose biases train: `'all'` (default: every Dense with a bias), or names, suffixes, class names, RegExps. */
  targetModules?: 'all' | TargetModules;
  /**
   * `'paper'` keeps, among the targets, only the layers with a name segment `query` or `intermediate`
   * (BERT's query projection and first feed-forward layer): the paper's strongest subset.
   */
  subset?: BitFitSubset;
  /** Also train layer-norm gamma and beta (tfjs `LayerNormalization`, @tfjs-peft/models `LayerNorm`). */
  trainLayerNorm?: boolean;
  modulesToSave?: string[] | null;
  taskType?: TaskType | null;
}

const OPTION_NAMES = ['targetModules', 'subset', 'trainLayerNorm', 'modulesToSave', 'taskType'] as const;

/** Layer-name segments that the paper's subset selects. */
export const PAPER_SUBSET_SEGMENTS = ['query', 'intermediate'] as const;

/**
 * BitFit (Ben Zaken et al. 2022): only bias terms train. Not a Hugging Face PEFT method (`peft_type`
 * `BITFIT` is ours); its file uses PEFT's key style, `base_model.model.<module>.bias`, holding the
 * trained bias VALUES (not deltas from the base).
 */
export class BitFitConfig extends PeftConfig {
  readonly peftType = 'BITFIT';
  readonly targetModules: 'all' | TargetModules;
  readonly subset: BitFitSubset;
  readonly trainLayerNorm: boolean;

  constructor(options: BitFitConfigOptions = {}) {
    if (options === null || typeof options !== 'object') {
      throw new PeftConfigError('options', options, "expected an object such as { subset: 'paper' }");
    }
    rejectUnknownFields('BitFitConfig', options as unknown as Record<string, unknown>, OPTION_NAMES);
    super(options);
    const targets = options.targetModules ?? 'all';
    this.targetModules = targets === 'all' ? 'all' : validateTargetModules('targetModules', targets);
    this.subset = requireOneOf('subset', options.subset ?? 'all', ['all', 'paper'] as const);
    this.trainLayerNorm = requireBoolean('trainLayerNorm', options.trainLayerNorm ?? false);
  }

  toJson(): Record<string, unknown> {
    return {
      ...this.commonJson(),
      target_modules: this.targetModules === 'all' ? 'all' : targetModulesToJson(this.targetModules),
      subset: this.subset,
      train_layer_norm: this.trainLayerNorm,
      // The file holds the trained biases themselves, not their change from the base model.
      saved_as: 'values',
    };
  }

  /** Reads the adapter_config.json written by saveAdapter. */
  static fromJson(json: Record<string, unknown>): BitFitConfig {
    if (json.peft_type !== 'BITFIT')
      throw new PeftConfigError('peft_type', json.peft_type, 'expected "BITFIT"');
    if (json.saved_as != null && json.saved_as !== 'values') {
      throw new PeftConfigError(
        'saved_as',
        json.saved_as,
        'is not supported by this version of @tfjs-peft/bitfit (expected "values")',
      );
    }
    const targets = json.target_modules;
    return new BitFitConfig({
      targetModules:
        targets == null || targets === 'all' ? 'all' : targetModulesFromJson('target_modules', targets),
      subset: (json.subset ?? 'all') as BitFitSubset,
      trainLayerNorm: (json.train_layer_norm ?? false) as boolean,
      modulesToSave: (json.modules_to_save ?? null) as string[] | null,
      taskType: (json.task_type ?? null) as TaskType | null,
    });
  }
}
