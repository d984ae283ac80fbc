import { PeftConfigError } from './errors';
import { requireOneOf } from './config-validation';

/** Which layers a method adapts, in the spellings Hugging Face PEFT users know (see target-matching.ts). */
export type TargetModules = 'all-dense' | string | RegExp | ReadonlyArray<string | RegExp>;

export const TASK_TYPES = [
  'SEQ_CLS',
  'SEQ_2_SEQ_LM',
  'CAUSAL_LM',
  'TOKEN_CLS',
  'QUESTION_ANS',
  'FEATURE_EXTRACTION',
] as const;
export type TaskType = (typeof TASK_TYPES)[number];

/**
 * The base of every method's config: plain, serialisable data with a `peftType` discriminant.
 * Subclasses validate every field in their constructor and convert to and from the snake_case
 * `adapter_config.json` that Hugging Face PEFT writes.
 */
export abstract class PeftConfig {
  abstract readonly peftType: string;
  readonly taskType: TaskType | null;
  /** Layers trained in full and saved inside the adapter (e.g. a classifier head). */
  readonly modulesToSave: string[] | null;

  protected constructor(options: { taskType?: TaskType | null; modulesToSave?: string[] | null }) {
    this.taskType = options.taskType == null ? null : requireOneOf('taskType', options.taskType, TASK_TYPES);
    if (options.modulesToSave != null) {
      if (
        !Array.isArray(options.modulesToSave) ||
        options.modulesToSave.some((m) => typeof m !== 'string' || !m)
      ) {
        throw new PeftConfigError('modulesToSave', options.modulesToSave, 'expected a list of layer names');
      }
    }
    this.modulesToSave = options.modulesToSave == null ? null : [...options.modulesToSave];
  }

  /** The `adapter_config.json` object, with PEFT's snake_case field names. */
  abstract toJson(): Record<string, unknown>;

  /** Fields common to every PEFT config file. */
  protected commonJson(): Record<string, unknown> {
    return {
      peft_type: this.peftType,
      task_type: this.taskType,
      base_model_name_or_path: null,
      revision: null,
      inference_mode: true,
      modules_to_save: this.modulesToSave,
    };
  }
}

/**
 * Serialises target modules for adapter_config.json. Names stay a list. A JavaScript RegExp has no
 * exact PEFT equivalent, so null asks the saver to write the module paths it matched instead.
 */
export function targetModulesToJson(targets: TargetModules): string | string[] | null {
  if (targets === 'all-dense') return 'all-linear';
  if (typeof targets === 'string') return [targets];
  if (targets instanceof RegExp || targets.some((t) => t instanceof RegExp)) return null;
  return [...(targets as string[])];
}

/** Reads target modules from adapter_config.json: a list of names, or a single full-match regex (PEFT's semantics). */
export function targetModulesFromJson(field: string, value: unknown): TargetModules {
  if (value === 'all-linear') return 'all-dense';
  if (typeof value === 'string') {
    try {
      return new RegExp(`^(?:${value})$`);
    } catch {
      throw new PeftConfigError(field, value, 'is not a valid regular expression');
    }
  }
  if (Array.isArray(value) && value.every((v) => typeof v === 'string' && v.length > 0))
    return value as string[];
  throw new PeftConfigError(field, value, 'expected a list of module names or a regular expression string');
}

export function validateTargetModules(field: string, value: unknown): TargetModules {
  if (typeof value === 'string' && value.length > 0) return value;
  if (value instanceof RegExp) return value;
  if (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => (typeof v === 'string' && v.length > 0) || v instanceof RegExp)
  ) {
    return [...value];
  }
  throw new PeftConfigError(
    field,
    value,
    "expected 'all-dense', a layer name, a RegExp, or a non-empty list of layer names, class names and RegExps",
  );
}
