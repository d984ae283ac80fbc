import { PeftConfigError } from './errors';

/** Field validators shared by every method's config; each names the field and the bad value. */
export function requireInteger(
  field: string,
  value: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new PeftConfigError(field, value, `expected an integer in [${min}, ${max}]`);
  }
  return value;
}

export function requireNumber(
  field: string,
  value: unknown,
  min = -Infinity,
  max = Infinity,
  { exclusiveMin = false } = {},
): number {
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value > max ||
    (exclusiveMin ? value <= min : value < min)
  ) {
    throw new PeftConfigError(
      field,
      value,
      `expected a finite number in ${exclusiveMin ? '(' : '['}${min}, ${max}]`,
    );
  }
  return value;
}

export function requireBoolean(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new PeftConfigError(field, value, 'expected true or false');
  return value;
}

export function requireOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new PeftConfigError(
      field,
      value,
      `expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
    );
  }
  return value as T;
}

export function requireStringList(field: string, value: unknown): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length === 0)) {
    throw new PeftConfigError(field, value, 'expected a list of non-empty strings');
  }
  return [...value];
}

export function requireIntegerList(field: string, value: unknown, min = 0): number[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'number' || !Number.isInteger(v) || v < min)) {
    throw new PeftConfigError(field, value, `expected a list of integers ≥ ${min}`);
  }
  return [...value];
}

/** A plain { pattern: number } record (PEFT's rank_pattern / alpha_pattern). */
export function requireNumberRecord(
  field: string,
  value: unknown,
  min: number,
  integer: boolean,
): Record<string, number> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new PeftConfigError(field, value, 'expected an object mapping layer-name patterns to numbers');
  }
  const result: Record<string, number> = Object.create(null);
  for (const [key, entry] of Object.entries(value)) {
    if (
      typeof entry !== 'number' ||
      !Number.isFinite(entry) ||
      entry < min ||
      (integer && !Number.isInteger(entry))
    ) {
      throw new PeftConfigError(
        `${field}.${key}`,
        entry,
        `expected ${integer ? 'an integer' : 'a number'} ≥ ${min}`,
      );
    }
    result[key] = entry;
  }
  return result;
}

/** Rejects fields the config does not know, so a typo (`lora_alfa`) is an error, not a silent default. */
export function rejectUnknownFields(
  configName: string,
  given: Record<string, unknown>,
  known: readonly string[],
): void {
  for (const key of Object.keys(given)) {
    if (!known.includes(key)) {
      throw new PeftConfigError(
        key,
        given[key],
        `is not a field of ${configName}; known fields: ${known.join(', ')}`,
      );
    }
  }
}

/** `Object.prototype`-free own-key check for objects parsed from untrusted JSON. */
export function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}
