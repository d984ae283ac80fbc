// Bit-exact weight snapshots, e.g. to prove that a frozen base model was not touched by training,
// or that merge + unmerge restores it.
import * as tf from '@tensorflow/tfjs-core';

export interface WeightSnapshot {
  name: string;
  shape: number[];
  dtype: string;
  bytes: Uint8Array;
}

/** Anything with tfjs-layers' `weights` (LayerVariable[]) or a plain list of variables/tensors. */
export type WeightSource =
  | { weights: ReadonlyArray<{ name: string; read(): tf.Tensor }> }
  | ReadonlyArray<tf.Tensor | { name: string; read(): tf.Tensor }>;

function entries(source: WeightSource): Array<{ name: string; tensor: tf.Tensor }> {
  const list: ReadonlyArray<unknown> = Array.isArray(source)
    ? source
    : (source as { weights: ReadonlyArray<unknown> }).weights;
  return list.map((item, index) => {
    if (item instanceof tf.Tensor) return { name: (item as tf.Variable).name ?? `#${index}`, tensor: item };
    const weight = item as { name: string; read(): tf.Tensor };
    return { name: weight.name, tensor: weight.read() };
  });
}

/** Copies every weight's raw bytes (in order). Creates no tensors. */
export async function snapshotWeights(source: WeightSource): Promise<WeightSnapshot[]> {
  const snapshot: WeightSnapshot[] = [];
  for (const { name, tensor } of entries(source)) {
    const data = await tensor.data();
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength).slice();
    snapshot.push({ name, shape: [...tensor.shape], dtype: tensor.dtype, bytes });
  }
  return snapshot;
}

/** Throws unless both snapshots hold the same weights (names, shapes, dtypes) with identical bytes. */
export function expectWeightsBitIdentical(
  before: readonly WeightSnapshot[],
  after: readonly WeightSnapshot[],
): void {
  const beforeNames = before.map((w) => w.name);
  const afterNames = after.map((w) => w.name);
  if (beforeNames.join('\n') !== afterNames.join('\n')) {
    throw new Error(
      `weights differ in names/order:\n  before: ${beforeNames.join(', ')}\n  after:  ${afterNames.join(', ')}`,
    );
  }
  for (let i = 0; i < before.length; i++) {
    const a = before[i];
    const b = after[i];
    if (a.dtype !== b.dtype || a.shape.join(',') !== b.shape.join(',')) {
      throw new Error(`weight ${a.name} changed type: ${a.dtype}[${a.shape}] -> ${b.dtype}[${b.shape}]`);
    }
    if (a.bytes.length !== b.bytes.length) throw new Error(`weight ${a.name} changed size`);
    let differing = 0;
    let first = -1;
    for (let j = 0; j < a.bytes.length; j++) {
      if (a.bytes[j] !== b.bytes[j]) {
        differing++;
        if (first < 0) first = j;
      }
    }
    if (differing > 0) {
      const elementSize = Math.max(
        1,
        a.bytes.length /
          Math.max(
            1,
            a.shape.reduce((x, y) => x * y, 1),
          ),
      );
      const element = Math.floor(first / elementSize);
      const view = (bytes: Uint8Array) =>
        a.dtype === 'int32'
          ? new Int32Array(bytes.slice(element * 4, element * 4 + 4).buffer)[0]
          : new Float32Array(bytes.slice(element * 4, element * 4 + 4).buffer)[0];
      throw new Error(
        `weight ${a.name} is not bit-identical: ${differing} byte(s) differ, first at element ${element} ` +
          `(before ${view(a.bytes)}, after ${view(b.bytes)})`,
      );
    }
  }
}

/** True when two byte arrays hold the same bytes (portable: no Node Buffer, so it runs in browsers too). */
export function bytesEqual(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
