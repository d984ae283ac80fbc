// The analytic FLOP count (flops.ts) for the prompt methods, on a tiny USE-lite-shaped encoder
// (buildTransformerEncoder + classifier head; block 0 attends at width 4, block 1 at 6). Prompt
// tuning lengthens the sequence by the virtual tokens and needs input gradients down to the prompt;
// prefix tuning gives attention extra keys/values and needs their gradients from the lowest layer.
// The forward count is checked against the matrix products a forward pass really runs (tf.profile).
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, type PeftConfig } from '@tfjs-peft/core';
import { PrefixTuningConfig, PromptTuningConfig } from '@tfjs-peft/prompt';
import { countFlops, type FlopCount, type ProductCount } from './flops';
import { PREFIX_TUNING_OPTIONS, PROMPT_TUNING_OPTIONS } from './methods';
import {
  buildTinyClassifier,
  TINY_ATTENTION_WIDTHS as WIDTHS,
  TINY_BATCH as BATCH,
  TINY_LENGTH as LENGTH,
  tinyInputs,
} from './tiny-encoder';

const VIRTUAL = 3;
const buildClassifier = () => buildTinyClassifier(2);

/** 2·m·k·n summed over the matrix products (MatMul, _FusedMatMul, BatchMatMul) one forward pass runs. */
async function profiledForwardFlops(model: tfl.LayersModel): Promise<number> {
  const { ids, mask } = tinyInputs();
  const xs = [ids, mask];
  const profile = await tf.profile(() => {
    tf.dispose(model.predict(xs) as tf.Tensor);
  });
  tf.dispose(xs);
  let flops = 0;
  for (const k of profile.kernels) {
    if (!['MatMul', '_FusedMatMul', 'BatchMatMul'].includes(k.name)) continue; // kernels, not their ops' entries (fusedMatMul__op)
    // tf.profile does not report the transpose flags, but a's last two dims hold m·k elements whatever
    // they are, and the output is [..., m, n]: 2·m·k·n per batch = 2·|out|·(a₁·a₂)/m.
    const a = k.inputShapes[0] as number[];
    const out = k.outputShapes[0] as number[];
    const m = out[out.length - 2];
    const size = out.reduce((p, d) => p * d, 1);
    flops += (2 * size * a[a.length - 2] * a[a.length - 1]) / m;
  }
  return flops;
}

const attention = (count: FlopCount) => count.products.filter((p) => p.weight.startsWith('(attention'));
const denseProducts = (count: FlopCount) => count.products.filter((p) => !p.weight.startsWith('(attention'));
const isHead = (p: ProductCount) => p.layer === 'pooler' || p.layer === 'classifier';

/**
 * The tiny classifier adapted with `config`, and its count at BATCH × LENGTH. Checked for both methods:
 * no product is counted for the prompt table or the embedding table, and every encoder product runs
 * on BATCH × `encoderTokens` rows (the head on BATCH).
 */
function countAdapted(config: PeftConfig, encoderTokens: number) {
  const base = buildClassifier();
  const peft = getPeftModel(base, config);
  const count = countFlops(peft.model, BATCH, LENGTH);
  expect(count.products.filter((p) => /prompt|embeddings/.test(`${p.layer} ${p.weight}`))).toEqual([]);
  for (const p of denseProducts(count)) expect(p.mkn[0]).toBe(isHead(p) ? BATCH : BATCH * encoderTokens);
  const dispose = () => {
    peft.model.dispose();
    base.dispose();
  };
  return { model: peft.model, count, dispose };
}

describe('countFlops for the prompt methods (tiny USE-lite-shaped encoder)', () => {
  let tensorsBefore = 0;
  beforeEach(() => {
    tensorsBefore = tf.memory().numTensors;
  });
  afterEach(() => {
    expect(tf.memory().numTensors).toBe(tensorsBefore); // every model built here is disposed
  });

  it('prompt tuning: every product above the embedding runs on L + n tokens, input gradients all the way down', async () => {
    const tokens = LENGTH + VIRTUAL;
    const { model, count, dispose } = countAdapted(
      new PromptTuningConfig({ ...PROMPT_TUNING_OPTIONS, numVirtualTokens: VIRTUAL }),
      tokens,
    );
    expect(attention(count).map((p) => [p.forward, p.backward])).toEqual(
      WIDTHS.map((a) => [2 * 2 * BATCH * tokens * tokens * a, 4 * 2 * BATCH * tokens * tokens * a]),
    );
    // The prompt trains: every product needs its input gradient (the lowest query/key/value too);
    // only the head copy gets a weight gradient.
    for (const p of denseProducts(count))
      expect(p.backward).toBe(p.layer === 'classifier' ? 2 * p.forward : p.forward);

    // = full fine-tuning of the base at L + n tokens, less the frozen kernels' weight gradients.
    const full = buildClassifier();
    for (const layer of full.layers) layer.trainable = true;
    const fullCount = countFlops(full, BATCH, tokens);
    const frozenWeightGradients = denseProducts(fullCount)
      .filter((p) => p.layer !== 'classifier')
      .reduce((s, p) => s + p.forward, 0);
    expect(count.forward).toBe(fullCount.forward);
    expect(count.step).toBe(fullCount.step - frozenWeightGradients);

    // The forward count is what a forward pass of the adapted model really multiplies.
    expect(await profiledForwardFlops(model)).toBe(count.forward);
    dispose();
    full.dispose();
  });

  it('prefix tuning: attention sees n extra keys/values; the lowest layer needs dP and the prefix rows of dK, dV', async () => {
    const { model, count, dispose } = countAdapted(
      new PrefixTuningConfig({ ...PREFIX_TUNING_OPTIONS, numVirtualTokens: VIRTUAL }),
      LENGTH,
    );
    const keys = LENGTH + VIRTUAL;
    const [core0, core1] = attention(count);
    const once = (a: number) => 2 * BATCH * LENGTH * keys * a;
    // Block 0: Q·[Kp; K]ᵀ and P·[Vp; V]; backward dP (for dS), dKp and dVp (the prefix rows only):
    // its queries, keys and values come from frozen layers over the frozen embedding.
    expect([core0.forward, core0.backward]).toEqual([
      2 * once(WIDTHS[0]),
      once(WIDTHS[0]) + 2 * (2 * BATCH * LENGTH * VIRTUAL * WIDTHS[0]),
    ]);
    // Block 1: its inputs depend on block 0's prefix: dP, dV, dQ, dK in full.
    expect([core1.forward, core1.backward]).toEqual([2 * once(WIDTHS[1]), 4 * once(WIDTHS[1])]);
    // Below block 0's attention nothing needs a gradient; from its output on every product needs dX.
    const below = ['query', 'key', 'value', 'residual_projection'].map(
      (n) => `encoder/layer_0/attention/${n}`,
    );
    for (const p of denseProducts(count)) {
      const expected = below.includes(p.layer) ? 0 : p.layer === 'classifier' ? 2 * p.forward : p.forward;
      expect([p.layer, p.backward]).toEqual([p.layer, expected]);
    }
    expect(denseProducts(count).filter((p) => below.includes(p.layer))).toHaveLength(4);

    expect(await profiledForwardFlops(model)).toBe(count.forward);
    dispose();
  });

  it('without prompt layers, attention is L × L as before (the base model and its forward pass agree)', async () => {
    const base = buildClassifier();
    const count = countFlops(base, BATCH, LENGTH);
    expect(attention(count).map((p) => p.forward)).toEqual(
      WIDTHS.map((a) => 4 * BATCH * LENGTH * LENGTH * a),
    );
    expect(await profiledForwardFlops(base)).toBe(count.forward);
    base.dispose();
  });
});
