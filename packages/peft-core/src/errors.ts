/**
 * Typed errors. Every error names the module, key, field or shape at fault, so a user can act on it
 * without reading our sources. All derive from PeftError so callers can catch the family.
 */
export class PeftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A config field has a wrong type or value. */
export class PeftConfigError extends PeftError {
  constructor(
    readonly field: string,
    readonly value: unknown,
    expectation: string,
  ) {
    super(`Invalid config field "${field}": ${describeValue(value)} — ${expectation}`);
  }
}

/** A `targetModules` entry (or the whole selection) matched no layer of the model. */
export class TargetNotFoundError extends PeftError {
  constructor(
    readonly target: string,
    readonly closestLayerNames: string[],
  ) {
    super(
      `Target module ${target} matches no layer of the model. ` +
        `Layers, closest first: ${closestLayerNames.slice(0, 12).join(', ')}` +
        (closestLayerNames.length > 12 ? `, … (${closestLayerNames.length} in all)` : ''),
    );
  }
}

/** A layer was selected that the method cannot adapt (e.g. LoRA on a BatchNormalization layer). */
export class UnsupportedLayerError extends PeftError {
  constructor(
    readonly layerName: string,
    readonly className: string,
    supported: string,
  ) {
    super(`Layer "${layerName}" (${className}) cannot be adapted: supported layer kinds are ${supported}`);
  }
}

/** Adapter names: duplicates, unknown names, names that would escape a folder. */
export class AdapterNameError extends PeftError {
  constructor(
    readonly adapterName: string,
    problem: string,
  ) {
    super(`Adapter "${adapterName}": ${problem}`);
  }
}

/** An unknown `peft_type`: the method's package has not been imported. */
export class UnknownPeftTypeError extends PeftError {
  constructor(
    readonly peftType: string,
    registered: string[],
  ) {
    super(
      `No PEFT method "${peftType}" is registered. Import its package first ` +
        `(e.g. import '@tfjs-peft/lora'). Registered: ${registered.length ? registered.join(', ') : 'none'}`,
    );
  }
}

/** A file (safetensors or adapter_config.json) is malformed, truncated or lies about its contents. */
export class AdapterFormatError extends PeftError {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

/** The saved adapter does not fit the model: missing or unexpected keys, wrong shapes. */
export class AdapterMismatchError extends PeftError {
  constructor(
    readonly key: string,
    problem: string,
  ) {
    super(`Adapter tensor "${key}": ${problem}`);
  }
}

/** A layer's adapters cannot be folded into the base weights (e.g. non-linear bottleneck adapters). */
export class AdapterNotMergeableError extends PeftError {
  constructor(
    readonly layerName: string,
    readonly adapterNames: readonly string[],
    why = "its adapters are not a change of the layer's weights",
  ) {
    super(
      `Adapters ${adapterNames.join(', ')} on layer "${layerName}" cannot be merged into the base weights: ${why}; nothing was merged`,
    );
  }
}

/** Merging would write NaN or Inf into a base weight. */
export class NonFiniteWeightError extends PeftError {
  constructor(
    readonly layerName: string,
    what: string,
  ) {
    super(`Layer "${layerName}": ${what} contains NaN or Inf; refusing to merge`);
  }
}

/** Reading or writing adapter files failed (IO handler level). */
export class AdapterIOError extends PeftError {
  constructor(
    readonly url: string,
    problem: string,
  ) {
    super(`${url}: ${problem}`);
  }
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value);
  // JSON.stringify writes NaN and ±Infinity as null, which would hide the bad value.
  if (typeof value === 'number') return String(value);
  if (value instanceof RegExp) return value.toString();
  try {
    const text = JSON.stringify(value);
    return text === undefined ? String(value) : text.length > 80 ? text.slice(0, 77) + '...' : text;
  } catch {
    return String(value);
  }
}
