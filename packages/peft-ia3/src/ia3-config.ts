import {
  PeftConfig,
  PeftConfigError,
  rejectUnknownFields,
  requireBoolean,
  targetModulesFromJson,
  targetModulesToJson,
  validateTargetModules,
  type TargetModules,
  type TaskType,
} from '@tfjs-peft/core';

export interface IA3ConfigOptions {
  /** Layers that get a learned vector: names, name suffixes, class names, RegExps, or 'all-dense'. */
  targetModules: TargetModules;
  /**
   * Among the targets, the layers whose INPUT is scaled (the second feed-forward layer in the paper);
   * the others have their output scaled. Names, suffixes and class names as targetModules, or one
   * RegExp. Every layer it selects must also be a target.
   */
  feedforwardModules?: TargetModules | null;
  /** true (default): vectors start at ones, a no-op. false: N(0, 1), as PEFT (for tests). */
  initIa3Weights?: boolean;
  /** Layers never adapted, same syntax as targetModules. */
  excludeModules?: TargetModules | null;
  modulesToSave?: string[] | null;
  taskType?: TaskType | null;
}

const OPTION_NAMES = [
  'targetModules',
  'feedforwardModules',
  'initIa3Weights',
  'excludeModules',
  'modulesToSave',
  'taskType',
] as const;

/**
 * Hugging Face PEFT's IA3Config (Liu et al. 2022, "(IA)³"), in camelCase, validated on construction:
 * a learned vector scales each target's output (`y = (x·W + b) ⊙ l`, `l` [out]) or, for
 * feedforwardModules, its input (`y = (x ⊙ l)·W + b`, `l` [in]).
 */
export class IA3Config extends PeftConfig {
  readonly peftType = 'IA3';
  readonly targetModules: TargetModules;
  readonly feedforwardModules: TargetModules | null;
  readonly initIa3Weights: boolean;
  readonly excludeModules: TargetModules | null;

  constructor(options: IA3ConfigOptions) {
    if (options === null || typeof options !== 'object') {
      throw new PeftConfigError(
        'options',
        options,
        "expected an object such as { targetModules: ['key', 'value', 'output'], feedforwardModules: ['output'] }",
      );
    }
    rejectUnknownFields('IA3Config', options as unknown as Record<string, unknown>, OPTION_NAMES);
    super(options);
    this.targetModules = validateTargetModules('targetModules', options.targetModules);
    const ff = options.feedforwardModules;
    this.feedforwardModules = ff == null ? null : validateTargetModules('feedforwardModules', ff);
    if (Array.isArray(this.feedforwardModules) && this.feedforwardModules.some((m) => m instanceof RegExp)) {
      // PEFT's feedforward_modules is a list of names or one regex: a RegExp inside a list has no file form.
      throw new PeftConfigError(
        'feedforwardModules',
        ff,
        'expected a list of layer names, or a single RegExp (a RegExp inside a list cannot be saved in PEFT’s format)',
      );
    }
    if (
      this.feedforwardModules instanceof RegExp &&
      this.feedforwardModules.flags.replace(/[dgsuy]/g, '') !== ''
    ) {
      throw new PeftConfigError(
        'feedforwardModules',
        ff,
        'a RegExp with flags (i, m) cannot be saved in PEFT’s format',
      );
    }
    this.initIa3Weights = requireBoolean('initIa3Weights', options.initIa3Weights ?? true);
    this.excludeModules =
      options.excludeModules == null ? null : validateTargetModules('excludeModules', options.excludeModules);
  }

  toJson(): Record<string, unknown> {
    const ff = this.feedforwardModules;
    return {
      ...this.commonJson(),
      target_modules: targetModulesToJson(this.targetModules),
      // PEFT reads a string as a full-match regex; ours are searched anywhere in the name.
      feedforward_modules:
        ff === null ? [] : ff instanceof RegExp ? `.*(?:${ff.source}).*` : targetModulesToJson(ff),
      exclude_modules: this.excludeModules === null ? null : targetModulesToJson(this.excludeModules),
      init_ia3_weights: this.initIa3Weights,
      fan_in_fan_out: false,
    };
  }

  /** Reads PEFT's adapter_config.json. Fields this version does not implement are refused, never ignored. */
  static fromJson(json: Record<string, unknown>): IA3Config {
    if (json.peft_type !== 'IA3') throw new PeftConfigError('peft_type', json.peft_type, 'expected "IA3"');
    if (json.fan_in_fan_out === true) {
      throw new PeftConfigError('fan_in_fan_out', true, 'is not supported by this version of @tfjs-peft/ia3');
    }
    const ff = json.feedforward_modules;
    return new IA3Config({
      targetModules: targetModulesFromJson('target_modules', json.target_modules),
      feedforwardModules:
        ff == null || (Array.isArray(ff) && ff.length === 0)
          ? null
          : targetModulesFromJson('feedforward_modules', ff),
      initIa3Weights: (json.init_ia3_weights ?? true) as boolean,
      excludeModules:
        json.exclude_modules == null ? null : targetModulesFromJson('exclude_modules', json.exclude_modules),
      modulesToSave: (json.modules_to_save ?? null) as string[] | null,
      taskType: (json.task_type ?? null) as TaskType | null,
    });
  }
}
