import * as tf from '@tensorflow/tfjs-core';
import { checkTensorCount, describeEachBackend } from './describe-each-backend';
import { expectTensorsClose } from './expect-tensors-close';

function randomMatrix(rows: number, columns: number, seed: number): Float32Array {
  // Deterministic values in [-1, 1) without touching tfjs' random state.
  const values = new Float32Array(rows * columns);
  let state = seed;
  for (let i = 0; i < values.length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    values[i] = state / 1073741824 - 1;
  }
  return values;
}

function referenceMatMul(a: Float32Array, b: Float32Array, n: number, k: number, m: number): Float64Array {
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[i * k + p] * b[p * m + j];
      out[i * m + j] = sum;
    }
  return out;
}

const timings: string[] = [];
afterAll(() => {
  if (timings.length > 0) console.log(`[tfjs-peft] op timings (this machine):\n  ${timings.join('\n  ')}`);
});

describeEachBackend('describeEachBackend', (backend) => {
  it('makes the backend current', () => {
    expect(tf.getBackend()).toBe(backend);
  });

  it('computes matMul like a float64 reference', async () => {
    const [n, k, m] = [33, 70, 17];
    const aValues = randomMatrix(n, k, 1);
    const bValues = randomMatrix(k, m, 2);
    const a = tf.tensor2d(aValues, [n, k]);
    const b = tf.tensor2d(bValues, [k, m]);
    const product = tf.matMul(a, b);
    // float32 accumulation of 70 products of magnitude <= 1: error well below 1e-4.
    await expectTensorsClose(product, Array.from(referenceMatMul(aValues, bValues, n, k, m)), 1e-4);
    tf.dispose([a, b, product]);
  });

  it('computes gradients through a small network', async () => {
    const x = tf.tensor2d(randomMatrix(4, 3, 3), [4, 3]);
    const w = tf.tensor2d(randomMatrix(3, 2, 4), [3, 2]);
    const dw = tf.grad((weights: tf.Tensor) => tf.sum(tf.sigmoid(tf.matMul(x, weights))))(w);
    const expected = tf.tidy(() => {
      const s = tf.sigmoid(tf.matMul(x, w));
      return tf.matMul(x, tf.mul(s, tf.sub(1, s)), true, false);
    });
    await expectTensorsClose(dw, expected, 1e-5);
    tf.dispose([x, w, dw, expected]);
  });

  it('measures a small op (first call compiles, then steady state)', async () => {
    const a = tf.tensor2d(randomMatrix(64, 64, 5), [64, 64]);
    const time = async () => {
      const start = performance.now();
      const y = tf.tidy(() => tf.relu(tf.add(tf.matMul(a, a), 1)));
      await y.data();
      y.dispose();
      return performance.now() - start;
    };
    const first = await time();
    const runs: number[] = [];
    for (let i = 0; i < 10; i++) runs.push(await time());
    runs.sort((p, q) => p - q);
    timings.push(
      `${backend}: 64x64 matMul+add+relu first ${first.toFixed(1)} ms, median ${runs[5].toFixed(2)} ms`,
    );
    a.dispose();
  });
});

describe('leak check', () => {
  it('passes when the count is unchanged', () => {
    expect(() => checkTensorCount('cpu', 5, 5)).not.toThrow();
  });
  it('fails naming the number of leaked tensors', () => {
    expect(() => checkTensorCount('wasm', 5, 7)).toThrow(
      /Tensor leak on backend wasm: 2 tensor\(s\) left alive/,
    );
    expect(() => checkTensorCount('cpu', 5, 4)).toThrow(/1 tensor\(s\) disposed/);
  });
});

describe('default backend outside describeEachBackend', () => {
  it('is cpu, even after webgpu and tensorflow were registered', () => {
    expect(tf.getBackend()).toBe('cpu');
  });
});
