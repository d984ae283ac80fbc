// The wasm backend's BatchMatMul through XNNPACK (registerWasmBatchMatMul) against the stock kernel
// it replaces: every transpose combination, rank 3 and 4, batch broadcasting, the products it hands
// back to the stock kernel, gradients through attention, and installation (idempotent, reversible).
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import {
  registerWasmBatchMatMul,
  unregisterWasmBatchMatMul,
  wasmBatchMatMulCalls,
  wasmBatchMatMulRegistered,
  WASM_BATCH_MAT_MUL_MIN_ENTRY_WORK,
} from './wasm-batch-mat-mul';

/** |actual − expected| ≤ 1e-5 · max|expected|, element by element. */
async function expectRelativelyClose(actual: tf.Tensor, expected: tf.Tensor): Promise<void> {
  expect(actual.shape).toEqual(expected.shape);
  const values = await expected.data();
  const scale = Math.max(1e-30, ...Array.from(values, Math.abs));
  await expectTensorsClose(actual, expected, 1e-5 * scale);
}

/** A deterministic operand with values of both signs and no two rows alike. */
function operand(shape: number[], seed: number): tf.Tensor {
  return tf.tidy(() => {
    const size = shape.reduce((p, d) => p * d, 1);
    return tf.reshape(tf.sin(tf.mul(tf.range(0, size, 1, 'float32'), 0.37 + seed * 0.11)), shape);
  });
}

/** fn's result with the stock kernel and with ours, and how many products each kernel took meanwhile. */
function stockAndOurs<T extends tf.Tensor | tf.Tensor[]>(
  fn: () => T,
): { stock: T; ours: T; xnnpack: number; handedBack: number } {
  unregisterWasmBatchMatMul();
  let stock: T;
  try {
    stock = fn();
  } finally {
    registerWasmBatchMatMul();
  }
  const before = wasmBatchMatMulCalls();
  const ours = fn();
  const after = wasmBatchMatMulCalls();
  return { stock, ours, xnnpack: after.xnnpack - before.xnnpack, handedBack: after.stock - before.stock };
}

type Case = [aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean];

/** Operand shapes for an [outer..., m, n] product with inner dimension k under the given flags. */
function shapesFor(
  aOuter: number[],
  bOuter: number[],
  m: number,
  k: number,
  n: number,
  transposeA: boolean,
  transposeB: boolean,
): Case {
  return [
    [...aOuter, ...(transposeA ? [k, m] : [m, k])],
    [...bOuter, ...(transposeB ? [n, k] : [k, n])],
    transposeA,
    transposeB,
  ];
}

const FLAGS: Array<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

const TAKEN: Case[] = FLAGS.flatMap(([ta, tb]) => [
  // rank 4, attention-like (heads × batch), and odd sizes
  shapesFor([2, 3], [2, 3], 16, 24, 20, ta, tb),
  shapesFor([2, 2], [2, 2], 17, 33, 19, ta, tb),
  // rank 3
  shapesFor([5], [5], 32, 8, 48, ta, tb),
  // wide against tall (the swapped form wins for some flags)
  shapesFor([3], [3], 4, 40, 96, ta, tb),
  shapesFor([3], [3], 96, 40, 4, ta, tb),
  // broadcasting: one side of batch 1, as a rank-2 operand or as leading ones
  shapesFor([4], [], 24, 16, 32, ta, tb),
  shapesFor([], [4], 24, 16, 32, ta, tb),
  shapesFor([2, 3], [1, 1], 16, 16, 24, ta, tb),
  shapesFor([1, 1], [2, 3], 16, 16, 24, ta, tb),
  // one product with a transpose flag: the stock kernel loops, we do not
  ...(ta || tb ? [shapesFor([], [], 32, 24, 40, ta, tb)] : []),
]);

describeEachBackend(
  'wasm BatchMatMul through XNNPACK',
  () => {
    beforeAll(() => {
      expect(registerWasmBatchMatMul()).toBe(true);
    });
    afterAll(() => {
      unregisterWasmBatchMatMul();
    });

    for (const [aShape, bShape, transposeA, transposeB] of TAKEN) {
      it(`[${aShape}]${transposeA ? 'ᵀ' : ''} × [${bShape}]${transposeB ? 'ᵀ' : ''} equals the stock kernel`, async () => {
        const a = operand(aShape, 1);
        const b = operand(bShape, 2);
        const { stock, ours, xnnpack } = stockAndOurs(() => tf.matMul(a, b, transposeA, transposeB));
        expect(xnnpack).toBe(1);
        await expectRelativelyClose(ours, stock);
        tf.dispose([a, b, stock, ours]);
      });
    }

    const HANDED_BACK: Array<[string, Case]> = [
      ['a 2-D untransposed product (XNNPACK already)', [[48, 32], [32, 40], false, false]],
      ['a small product (the loop is faster)', [[8, 4, 6], [8, 6, 5], false, false]],
      ['a broadcast other than batch 1 ([2,3] with [2,1])', [[2, 3, 16, 16], [2, 1, 16, 16], false, false]],
      ['an empty product', [[3, 0, 16], [3, 16, 8], false, false]],
    ];
    for (const [what, [aShape, bShape, transposeA, transposeB]] of HANDED_BACK) {
      it(`hands ${what} to the stock kernel`, async () => {
        const a = operand(aShape, 3);
        const b = operand(bShape, 4);
        const { stock, ours, xnnpack, handedBack } = stockAndOurs(() =>
          tf.matMul(a, b, transposeA, transposeB),
        );
        expect(xnnpack).toBe(0);
        expect(handedBack).toBe(1);
        await expectTensorsClose(ours, stock, 0);
        tf.dispose([a, b, stock, ours]);
      });
    }

    it("refuses mismatched inner dimensions with the stock kernel's error", () => {
      const a = tf.zeros([2, 16, 24]);
      const b = tf.zeros([2, 25, 16]);
      expect(() => tf.matMul(a, b)).toThrow(/inner shapes/);
      tf.dispose([a, b]);
    });

    it('takes products from the size threshold on', () => {
      expect(WASM_BATCH_MAT_MUL_MIN_ENTRY_WORK).toBe(16 * 16 * 16);
      const a = operand([4, 16, 16], 5);
      const before = wasmBatchMatMulCalls();
      tf.dispose(tf.matMul(a, a, false, true));
      expect(wasmBatchMatMulCalls().xnnpack - before.xnnpack).toBe(1);
      a.dispose();
    });

    it('gradients through multi-head attention equal the stock path', async () => {
      const [batch, heads, length, depth] = [2, 3, 16, 24];
      const q = operand([batch, heads, length, depth], 6);
      const k = operand([batch, heads, length, depth], 7);
      const v = operand([batch, heads, length, depth], 8);
      const weights = operand([batch, heads, length, depth], 9);
      const loss = (qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor) => {
        const scores = tf.mul(tf.matMul(qi, ki, false, true), 1 / Math.sqrt(depth));
        return tf.sum(tf.mul(tf.matMul(tf.softmax(scores), vi), weights));
      };
      const { stock, ours, xnnpack } = stockAndOurs(() => tf.grads(loss)([q, k, v]));
      // Forward: QKᵀ and PV; backward: two products for each.
      expect(xnnpack).toBe(6);
      for (let i = 0; i < 3; i++) await expectRelativelyClose(ours[i]!, stock[i]!);
      tf.dispose([q, k, v, weights, ...stock, ...ours]);
    });

    it('frees everything it allocates: live tensors, data ids and bytes stay as they were', async () => {
      const backend = tf.backend() as unknown as { numDataIds(): number };
      const cases = FLAGS.map(([ta, tb]) => shapesFor([2, 2], [2, 2], 32, 24, 40, ta, tb));
      const operands = cases.map(([aShape, bShape], i) => [operand(aShape, i), operand(bShape, i + 4)]);
      const products = () =>
        cases.map(([, , ta, tb], i) => tf.matMul(operands[i]![0]!, operands[i]![1]!, ta, tb));
      tf.dispose(products()); // warm-up
      const before = { ids: backend.numDataIds(), bytes: tf.memory().numBytes };
      for (const product of products()) {
        await product.data();
        product.dispose();
      }
      expect({ ids: backend.numDataIds(), bytes: tf.memory().numBytes }).toEqual(before);
      tf.dispose(operands.flat());
    });

    it('installs idempotently and uninstalls back to the stock kernel', () => {
      const ours = tf.getKernel('BatchMatMul', 'wasm');
      expect(wasmBatchMatMulRegistered()).toBe(true);
      expect(registerWasmBatchMatMul()).toBe(true);
      expect(tf.getKernel('BatchMatMul', 'wasm')).toBe(ours);
      expect(unregisterWasmBatchMatMul()).toBe(true);
      const stock = tf.getKernel('BatchMatMul', 'wasm');
      expect(stock).not.toBe(ours);
      expect(wasmBatchMatMulRegistered()).toBe(false);
      expect(unregisterWasmBatchMatMul()).toBe(false);
      expect(tf.getKernel('BatchMatMul', 'wasm')).toBe(stock);
      expect(registerWasmBatchMatMul()).toBe(true);
      expect(wasmBatchMatMulRegistered()).toBe(true);
    });
  },
  { only: ['wasm'] },
);
