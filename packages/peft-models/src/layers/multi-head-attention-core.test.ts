import * as tf from '@tensorflow/tfjs-core';
import { layers } from '@tensorflow/tfjs-layers';
import { checkGradients, describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { multiHeadAttention } from '../ops/multi-head-attention';
import { MultiHeadAttentionCore } from './multi-head-attention-core';

const BATCH = 2;
const QUERY_LENGTH = 3;
const HEADS = 2;
const DEPTH = 3;
const VALUE_DEPTH = 2;

/** Deterministic pseudo-random numbers in [-1, 1). */
function values(count: number, seed: number): number[] {
  let state = seed;
  return Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return (state / 2147483648) * 2 - 1;
  });
}

/**
 * Attention written out head by head and position by position in plain JavaScript (float64).
 * q: [b][i][h*d], k: [b][j][h*d], v: [b][j][h*dv], mask: [b][j].
 */
function directAttention(
  q: number[][][],
  k: number[][][],
  v: number[][][],
  mask: number[][] | null,
  heads: number,
  causal: boolean,
  scale: number,
): number[][][] {
  const depth = q[0][0].length / heads;
  const valueDepth = v[0][0].length / heads;
  const keyLength = k[0].length;
  const queryLength = q[0].length;
  return q.map((queries, b) =>
    queries.map((query, i) => {
      const out: number[] = [];
      for (let h = 0; h < heads; h++) {
        const logits: number[] = [];
        for (let j = 0; j < keyLength; j++) {
          let dot = 0;
          for (let d = 0; d < depth; d++) dot += query[h * depth + d] * scale * k[b][j][h * depth + d];
          const hidden = (mask != null && mask[b][j] === 0) || (causal && j > i + keyLength - queryLength);
          logits.push(hidden ? -Infinity : dot);
        }
        const max = Math.max(...logits);
        const exps = logits.map((l) => (l === -Infinity ? 0 : Math.exp(l - max)));
        const total = exps.reduce((a, x) => a + x, 0);
        for (let e = 0; e < valueDepth; e++) {
          let acc = 0;
          for (let j = 0; j < keyLength; j++) acc += (exps[j] / total) * v[b][j][h * valueDepth + e];
          out.push(acc);
        }
      }
      return out;
    }),
  );
}

function randomTensor3d(shape: [number, number, number], seed: number): tf.Tensor3D {
  return tf.tensor3d(values(shape[0] * shape[1] * shape[2], seed), shape);
}

describeEachBackend('MultiHeadAttentionCore', () => {
  const keyLength = 4;
  const scale = 1 / Math.sqrt(DEPTH);
  const mask = [
    [1, 1, 1, 0],
    [1, 1, 0, 0],
  ];

  it('equals a direct per-head computation with a padding mask', async () => {
    const q = randomTensor3d([BATCH, QUERY_LENGTH, HEADS * DEPTH], 1);
    const k = randomTensor3d([BATCH, keyLength, HEADS * DEPTH], 2);
    const v = randomTensor3d([BATCH, keyLength, HEADS * VALUE_DEPTH], 3);
    const m = tf.tensor2d(mask);
    const layer = new MultiHeadAttentionCore({ numHeads: HEADS });
    const out = layer.apply([q, k, v, m]) as tf.Tensor;
    const expected = directAttention(q.arraySync(), k.arraySync(), v.arraySync(), mask, HEADS, false, scale);
    await expectTensorsClose(out, expected, 1e-5);
    tf.dispose([q, k, v, m, out]);
  });

  it('applies a causal mask, shifted by key/value prefixes', async () => {
    for (const keys of [QUERY_LENGTH, QUERY_LENGTH + 2]) {
      const q = randomTensor3d([BATCH, QUERY_LENGTH, HEADS * DEPTH], 4);
      const k = randomTensor3d([BATCH, keys, HEADS * DEPTH], 5);
      const v = randomTensor3d([BATCH, keys, HEADS * VALUE_DEPTH], 6);
      const out = multiHeadAttention(q, k, v, null, { numHeads: HEADS, causal: true });
      const expected = directAttention(q.arraySync(), k.arraySync(), v.arraySync(), null, HEADS, true, scale);
      await expectTensorsClose(out, expected, 1e-5);
      tf.dispose([q, k, v, out]);
    }
  });

  it('causal: changing a later token never changes an earlier output', async () => {
    const x = randomTensor3d([1, 4, HEADS * DEPTH], 7);
    const changed = tf.tidy(() =>
      tf.concat([tf.slice(x, [0, 0, 0], [1, 3, -1]), tf.fill([1, 1, HEADS * DEPTH], 5)], 1),
    );
    const layer = new MultiHeadAttentionCore({ numHeads: HEADS, causal: true });
    const a = layer.apply([x, x, x]) as tf.Tensor;
    const b = layer.apply([changed, changed, changed]) as tf.Tensor;
    const [early, earlyChanged, last, lastChanged] = tf.tidy(() => [
      tf.slice(a, [0, 0, 0], [1, 3, -1]),
      tf.slice(b, [0, 0, 0], [1, 3, -1]),
      tf.slice(a, [0, 3, 0], [1, 1, -1]),
      tf.slice(b, [0, 3, 0], [1, 1, -1]),
    ]);
    await expectTensorsClose(early, earlyChanged, 1e-6);
    const lastDifference = tf.tidy(() => tf.max(tf.abs(tf.sub(last, lastChanged))));
    expect((await lastDifference.data())[0]).toBeGreaterThan(1e-3);
    tf.dispose([x, changed, a, b, early, earlyChanged, last, lastChanged, lastDifference]);
  });

  it('padding keys get exactly zero weight', async () => {
    const q = randomTensor3d([1, 2, HEADS * DEPTH], 8);
    const k = randomTensor3d([1, 3, HEADS * DEPTH], 9);
    const v = randomTensor3d([1, 3, HEADS * VALUE_DEPTH], 10);
    const m = tf.tensor2d([[1, 1, 0]]);
    const kGarbage = tf.tidy(() =>
      tf.concat([tf.slice(k, [0, 0, 0], [1, 2, -1]), tf.fill([1, 1, HEADS * DEPTH], 100)], 1),
    );
    const vGarbage = tf.tidy(() =>
      tf.concat([tf.slice(v, [0, 0, 0], [1, 2, -1]), tf.fill([1, 1, HEADS * VALUE_DEPTH], -100)], 1),
    );
    const a = multiHeadAttention(q, k, v, m, { numHeads: HEADS });
    const b = multiHeadAttention(q, kGarbage as tf.Tensor3D, vGarbage as tf.Tensor3D, m, { numHeads: HEADS });
    await expectTensorsClose(a, b, 1e-6);
    tf.dispose([q, k, v, m, kGarbage, vGarbage, a, b]);
  });

  it('gradients with respect to q, k and v match central finite differences', async () => {
    const q = randomTensor3d([1, 2, HEADS * DEPTH], 11);
    const k = randomTensor3d([1, 3, HEADS * DEPTH], 12);
    const v = randomTensor3d([1, 3, HEADS * VALUE_DEPTH], 13);
    const m = tf.tensor2d([[1, 1, 0]]);
    const weights = tf.tensor3d(values(2 * HEADS * VALUE_DEPTH, 14), [1, 2, HEADS * VALUE_DEPTH]);
    for (const causal of [false, true]) {
      const result = await checkGradients(
        ([query, key, value]) =>
          tf.sum(
            tf.mul(
              multiHeadAttention(query as tf.Tensor3D, key as tf.Tensor3D, value as tf.Tensor3D, m, {
                numHeads: HEADS,
                causal,
              }),
              weights,
            ),
          ),
        [q, k, v],
        { tolerance: 5e-3 },
      );
      expect(result.checked).toBe(q.size + k.size + v.size);
    }
    tf.dispose([q, k, v, m, weights]);
  });

  it('serialises its configuration', () => {
    const layer = new MultiHeadAttentionCore({ numHeads: 4, causal: true, scale: 0.5, name: 'core' });
    const config = layer.getConfig();
    expect(config).toMatchObject({ numHeads: 4, causal: true, scale: 0.5, name: 'core' });
    const restored = layers.Layer.fromConfig(MultiHeadAttentionCore, config) as MultiHeadAttentionCore;
    expect(restored.numHeads).toBe(4);
    expect(restored.causal).toBe(true);
    expect(MultiHeadAttentionCore.className).toBe('MultiHeadAttentionCore');
  });
});
