// Numeric comparison helpers. Asynchronous on purpose: webgpu (and webgl) cannot read a tensor
// synchronously in Node, so always `await expectTensorsClose(...)`.
import * as tf from '@tensorflow/tfjs-core';

export type NumericArrayLike = ArrayLike<number> | ReadonlyArray<unknown>;

/** Default tolerance: float32 arithmetic across backends (webgpu/wasm reorder sums, use FMA). */
export const DEFAULT_TOLERANCE = 1e-4;

function flatten(values: ArrayLike<unknown>, out: number[] = []): number[] {
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (typeof value === 'number') out.push(value);
    else if (typeof value === 'boolean') out.push(value ? 1 : 0);
    else if (value !== null && typeof value === 'object' && 'length' in (value as object))
      flatten(value as ArrayLike<unknown>, out);
    else throw new Error(`expectArraysClose: not a number: ${String(value)}`);
  }
  return out;
}

function indexToCoordinates(index: number, shape: readonly number[] | undefined): string {
  if (shape === undefined || shape.length <= 1) return `[${index}]`;
  const coordinates: number[] = [];
  let rest = index;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    coordinates.unshift(rest % shape[axis]);
    rest = Math.floor(rest / shape[axis]);
  }
  return `[${coordinates.join(', ')}]`;
}

function compare(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  shape?: readonly number[],
  label = 'arrays',
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected length ${expected.length}`);
  }
  let maxDiff = -1;
  let maxIndex = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    let diff: number;
    if (Number.isNaN(a) || Number.isNaN(e)) diff = Number.isNaN(a) && Number.isNaN(e) ? 0 : Infinity;
    else if (a === e)
      diff = 0; // also equal infinities
    else diff = Math.abs(a - e);
    if (Number.isNaN(diff)) diff = Infinity;
    if (diff > maxDiff) {
      maxDiff = diff;
      maxIndex = i;
    }
  }
  if (maxDiff > tolerance) {
    throw new Error(
      `${label} differ: max |actual - expected| = ${maxDiff} > tolerance ${tolerance} at ${indexToCoordinates(maxIndex, shape)} ` +
        `(actual ${actual[maxIndex]}, expected ${expected[maxIndex]}; ${actual.length} elements)`,
    );
  }
}

/** Max-abs-difference comparison of two (nested) number arrays or typed arrays. Synchronous. */
export function expectArraysClose(
  actual: NumericArrayLike,
  expected: NumericArrayLike,
  tolerance = DEFAULT_TOLERANCE,
): void {
  compare(flatten(actual), flatten(expected), tolerance);
}

/**
 * Checks shapes match and max |actual - expected| <= tolerance; the message names the max
 * difference and its coordinates. `expected` may be a tensor or a (nested) array; neither is disposed.
 */
export async function expectTensorsClose(
  actual: tf.Tensor,
  expected: tf.Tensor | NumericArrayLike | number,
  tolerance = DEFAULT_TOLERANCE,
): Promise<void> {
  let expectedValues: number[];
  if (expected instanceof tf.Tensor) {
    if (!tf.util.arraysEqual(actual.shape, expected.shape)) {
      throw new Error(`tensors differ in shape: actual [${actual.shape}] vs expected [${expected.shape}]`);
    }
    expectedValues = Array.from(await expected.data<'float32'>());
  } else {
    expectedValues = typeof expected === 'number' ? [expected] : flatten(expected);
  }
  const actualValues = Array.from(await actual.data<'float32'>());
  compare(actualValues, expectedValues, tolerance, actual.shape, 'tensors');
}
