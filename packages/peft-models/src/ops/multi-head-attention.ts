import {
  add,
  cast,
  expandDims,
  greater,
  matMul,
  mul,
  range,
  reshape,
  scalar,
  softmax,
  sub,
  tidy,
  transpose,
  type Tensor,
  type Tensor2D,
  type Tensor3D,
} from '@tensorflow/tfjs-core';

/** A large negative logit: exp() of it underflows to zero, as in the Universal Sentence Encoder graph. */
export const MASKED_LOGIT = -1e9;

export interface MultiHeadAttentionOptions {
  numHeads: number;
  /** Multiplies the queries before the scores; default 1/sqrt(query depth per head). */
  scale?: number;
  /** Query position i sees key position j only when j <= i + (keyLength - queryLength). */
  causal?: boolean;
}

/** [batch, length, heads * depth] → [batch, heads, length, depth]. */
function splitHeads(x: Tensor3D, numHeads: number): Tensor {
  const [batch, length, width] = x.shape;
  if (width % numHeads !== 0) {
    throw new Error(`Width ${width} is not divisible by ${numHeads} heads.`);
  }
  return transpose(reshape(x, [batch, length, numHeads, width / numHeads]), [0, 2, 1, 3]);
}

/**
 * Additive bias [1, 1, queryLength, keyLength] that hides future keys. Keys beyond the
 * queries (key/value prefixes) come first, so the diagonal is shifted by keyLength − queryLength.
 */
export function causalBias(queryLength: number, keyLength: number): Tensor {
  return tidy(() => {
    const offset = keyLength - queryLength;
    const rows = reshape(range(0, queryLength, 1, 'int32'), [queryLength, 1]);
    const columns = reshape(range(0, keyLength, 1, 'int32'), [1, keyLength]);
    const future = greater(sub(columns, rows), scalar(offset, 'int32'));
    return reshape(mul(cast(future, 'float32'), scalar(MASKED_LOGIT)), [1, 1, queryLength, keyLength]);
  });
}

/**
 * Scaled dot-product attention over all heads at once (two batched matMuls, no loop over heads).
 *
 * @param query [batch, queryLength, heads * depth]
 * @param key [batch, keyLength, heads * depth]
 * @param value [batch, keyLength, heads * valueDepth]
 * @param keyMask [batch, keyLength], 1 for a real token and 0 for padding (optional)
 * @returns [batch, queryLength, heads * valueDepth]
 */
export function multiHeadAttention(
  query: Tensor3D,
  key: Tensor3D,
  value: Tensor3D,
  keyMask: Tensor2D | null,
  options: MultiHeadAttentionOptions,
): Tensor3D {
  return tidy(() => {
    const { numHeads } = options;
    const [batch, queryLength, queryWidth] = query.shape;
    const keyLength = key.shape[1];
    const scale = options.scale ?? 1 / Math.sqrt(queryWidth / numHeads);
    const q = mul(splitHeads(query, numHeads), scalar(scale));
    const k = splitHeads(key, numHeads);
    const v = splitHeads(value, numHeads);
    let scores = matMul(q, k, false, true); // [batch, heads, queryLength, keyLength]
    if (keyMask != null) {
      const padding = mul(sub(scalar(1), cast(keyMask, 'float32')), scalar(MASKED_LOGIT));
      scores = add(scores, expandDims(expandDims(padding, 1), 1));
    }
    if (options.causal) {
      scores = add(scores, causalBias(queryLength, keyLength));
    }
    const weights = softmax(scores);
    const context = matMul(weights, v); // [batch, heads, queryLength, valueDepth]
    const valueWidth = value.shape[2];
    return reshape(transpose(context, [0, 2, 1, 3]), [batch, queryLength, valueWidth]) as Tensor3D;
  });
}
