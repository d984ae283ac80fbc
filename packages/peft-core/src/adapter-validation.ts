import { AdapterFormatError } from './errors';

/** An adapter file holds NaN or ±Infinity: loading it would poison every output it touches. */
export class NonFiniteAdapterValueError extends AdapterFormatError {
  constructor(
    file: string,
    readonly key: string,
    readonly index: number,
    readonly value: number,
  ) {
    super(file, `tensor "${key}" holds ${value} at element ${index}; adapter weights must be finite`);
  }
}

/**
 * Refuses NaN and ±Infinity values in an adapter file's tensors, naming the first key (in file
 * order) and element at fault. Pure: reads the decoded values, allocates nothing, writes nothing —
 * so the loader can call it before any variable exists. A NaN can only come from a broken training
 * run or a hostile file; neither should silently reach a model (PEFT itself would load it, and every
 * prediction would be NaN).
 */
export function assertFiniteAdapterTensors(
  tensors: ReadonlyMap<string, { data: ArrayLike<number> }>,
  fileName = 'adapter_model.safetensors',
): void {
  for (const [key, { data }] of tensors) {
    for (let i = 0; i < data.length; i++) {
      const value = data[i];
      // value - value is 0 for every finite number and NaN for NaN and ±Infinity.
      if (value - value !== 0) throw new NonFiniteAdapterValueError(fileName, key, i, value);
    }
  }
}
