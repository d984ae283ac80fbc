import * as tf from '@tensorflow/tfjs-core';
import { getPeftModel, MemoryAdapterStore, parseSafetensors } from '@tfjs-peft/core';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { attentionOnly, denseOnly, encoderClassifier, tokens, WIDTH } from './__tests__/models';
import {
  foldPromptEncoders,
  NoAttentionLayerError,
  PrefixTuningConfig,
  promptFromPretrained,
  PromptEncoderConfig,
  savePromptAdapter,
  TokenDimMismatchError,
} from './index';

/** Attention written out per batch row and head with plain loops: softmax(q·kᵀ/√d + mask)·v. */
function directAttention(
  q: number[][][],
  k: number[][][],
  v: number[][][],
  mask: number[][],
  heads: number,
): number[][][] {
  const depth = q[0][0].length / heads;
  return q.map((rows, b) =>
    rows.map((qi) => {
      const out: number[] = [];
      for (let h = 0; h < heads; h++) {
        const scores = k[b].map((kj, j) => {
          let s = 0;
          for (let d = 0; d < depth; d++) s += qi[h * depth + d] * kj[h * depth + d];
          return s / Math.sqrt(depth) + (mask[b][j] ? 0 : -1e9);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const z = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < depth; d++)
          out.push(e.reduce((acc, w, j) => acc + (w / z) * v[b][j][h * depth + d], 0));
      }
      return out;
    }),
  );
}

describeEachBackend('Prefix tuning and P-tuning', () => {
  it('disposing the adapted model releases the shared prefix parameters once and every tensor', () => {
    const tensors = tf.memory().numTensors;
    for (const config of [
      new PrefixTuningConfig({ numVirtualTokens: 3 }),
      new PrefixTuningConfig({ numVirtualTokens: 2, prefixProjection: true, encoderHiddenSize: 6 }),
    ]) {
      const base = encoderClassifier();
      const peft = getPeftModel(base, config);
      expect(peft.peftLayers().length).toBeGreaterThan(1);
      // What the demo does: the adapted graph first, then the base model whose layers it shares.
      expect(() => peft.model.dispose()).not.toThrow();
      base.dispose();
      expect(tf.memory().numTensors).toBe(tensors);
    }
  });

  it('prefix tuning on one attention layer = attention over [prefix; keys], [prefix; values] (≤1e-5)', async () => {
    const model = attentionOnly();
    const peft = getPeftModel(model, new PrefixTuningConfig({ numVirtualTokens: 3 }));
    const config = peft.peftConfig.default as PrefixTuningConfig;
    expect([config.tokenDim, config.numLayers, config.numAttentionHeads]).toEqual([WIDTH, 1, 2]);
    expect(peft.getNbTrainableParameters().trainableParams).toBe(3 * 2 * WIDTH);
    const [q, k, v] = [0, 1, 2].map(() => tf.randomNormal([2, 4, WIDTH]));
    const mask = tf.tensor2d([
      [1, 1, 1, 1],
      [1, 1, 0, 0],
    ]);
    const out = peft.model.predict([q, k, v, mask]) as tf.Tensor;
    const state = peft.peftLayers()[0].adapterState('default').get('prompt_embeddings')!;
    expect(state.shape).toEqual([3, 2 * WIDTH]);
    const prefix = (await state.array()) as number[][];
    const kp = prefix.map((r) => r.slice(0, WIDTH));
    const vp = prefix.map((r) => r.slice(WIDTH));
    const [qa, ka, va, ma] = (await Promise.all([q.array(), k.array(), v.array(), mask.array()])) as [
      number[][][],
      number[][][],
      number[][][],
      number[][],
    ];
    const expected = directAttention(
      qa,
      ka.map((rows) => [...kp, ...rows]),
      va.map((rows) => [...vp, ...rows]),
      ma.map((row) => [1, 1, 1, ...row]),
      2,
    );
    await expectTensorsClose(out, expected, 1e-5);
    tf.dispose([q, k, v, mask, out, state]);
    peft.unload().dispose();
  });

  for (const projection of [false, true]) {
    it(`prefix tuning on the encoder (projection ${projection}): only the prefix trains, padding-invariant, fold and save → load identical`, async () => {
      const base = encoderClassifier();
      const before = await snapshotWeights(base);
      const peft = getPeftModel(
        base,
        new PrefixTuningConfig({ numVirtualTokens: 2, prefixProjection: projection, encoderHiddenSize: 6 }),
      );
      const expectedTrainable = projection
        ? 2 * WIDTH + (WIDTH * 6 + 6) + (6 * 2 * 2 * WIDTH + 2 * 2 * WIDTH)
        : 2 * 2 * 2 * WIDTH;
      expect(peft.getNbTrainableParameters().trainableParams).toBe(expectedTrainable);
      const [ids, mask] = tokens([5, 3, 4], 5);
      const [idsPadded, maskPadded] = tokens([5, 3, 4], 8);
      const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 2, 1], 'int32'), 3));
      peft.model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
      const history = await peft.model.fit([ids, mask], labels, { epochs: 10, batchSize: 3, verbose: 0 });
      const losses = history.history.loss as number[];
      expect(losses[9]).toBeLessThan(losses[0]);
      expectWeightsBitIdentical(before, await snapshotWeights(base));
      const out = peft.model.predict([ids, mask]) as tf.Tensor;
      const padded = peft.model.predict([idsPadded, maskPadded]) as tf.Tensor;
      await expectTensorsClose(padded, out, 1e-5);
      foldPromptEncoders(peft);
      expect(peft.getNbTrainableParameters().trainableParams).toBe(2 * 2 * 2 * WIDTH);
      const folded = peft.model.predict([ids, mask]) as tf.Tensor;
      await expectTensorsClose(folded, out, 1e-5);
      const store = new MemoryAdapterStore(`memory://prefix-${projection}`);
      await savePromptAdapter(peft, store);
      const json = JSON.parse(
        new TextDecoder().decode((await store.readFile('adapter_config.json', 1 << 20))!),
      );
      expect(json).toMatchObject({
        peft_type: 'PREFIX_TUNING',
        num_virtual_tokens: 2,
        token_dim: WIDTH,
        num_layers: 2,
        num_attention_heads: 2,
        prefix_projection: projection,
      });
      (peft.model.optimizer as tf.Optimizer).dispose();
      peft.unload();
      const loaded = await promptFromPretrained(base, store);
      const reloaded = loaded.model.predict([ids, mask]) as tf.Tensor;
      await expectTensorsClose(reloaded, folded, 0);
      tf.dispose([ids, mask, idsPadded, maskPadded, labels, out, padded, folded, reloaded]);
      loaded.unload().dispose();
    });
  }

  for (const kind of ['MLP', 'LSTM'] as const) {
    it(`P-tuning (${kind}): trains the encoder only, saves its output as prompt_embeddings, loads identical`, async () => {
      const base = encoderClassifier();
      const before = await snapshotWeights(base);
      const peft = getPeftModel(
        base,
        new PromptEncoderConfig({
          numVirtualTokens: 3,
          encoderReparameterizationType: kind,
          encoderHiddenSize: 4,
        }),
      );
      const [ids, mask] = tokens([5, 3, 4], 5);
      const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 2, 1], 'int32'), 3));
      peft.model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
      const history = await peft.model.fit([ids, mask], labels, { epochs: 8, batchSize: 3, verbose: 0 });
      const losses = history.history.loss as number[];
      expect(losses[7]).toBeLessThan(losses[0]);
      expectWeightsBitIdentical(before, await snapshotWeights(base));
      const out = peft.model.predict([ids, mask]) as tf.Tensor;
      const store = new MemoryAdapterStore(`memory://ptuning-${kind}`);
      await savePromptAdapter(peft, store);
      const json = JSON.parse(
        new TextDecoder().decode((await store.readFile('adapter_config.json', 1 << 20))!),
      );
      expect(json).toMatchObject({
        peft_type: 'P_TUNING',
        encoder_reparameterization_type: kind,
        encoder_hidden_size: 4,
        token_dim: WIDTH,
      });
      (peft.model.optimizer as tf.Optimizer).dispose();
      peft.unload();
      const loaded = await promptFromPretrained(base, store);
      expect(loaded.getNbTrainableParameters().trainableParams).toBe(0);
      const reloaded = loaded.model.predict([ids, mask]) as tf.Tensor;
      await expectTensorsClose(reloaded, out, 1e-5);
      tf.dispose([ids, mask, labels, out, reloaded]);
      loaded.unload().dispose();
    });
  }

  it.each([false, true])(
    "init_weights 'zero' (PEFT's no-op start) gives a zero prefix (prefixProjection %s) and is saved; the default is not written",
    async (prefixProjection) => {
      const base = encoderClassifier();
      const peft = getPeftModel(
        base,
        new PrefixTuningConfig({ numVirtualTokens: 2, prefixProjection, initWeights: 'zero' }),
      );
      peft.addAdapter('random', new PrefixTuningConfig({ numVirtualTokens: 2, prefixProjection }));
      const store = new MemoryAdapterStore('memory://prefix-zero');
      await peft.saveAdapter(store, { selectedAdapters: ['default', 'random'] });
      const config = (folder: string) =>
        JSON.parse(new TextDecoder().decode(store.files.get(`${folder}adapter_config.json`)!)) as Record<
          string,
          unknown
        >;
      const prompt = (folder: string) =>
        Array.from(
          parseSafetensors(store.files.get(`${folder}adapter_model.safetensors`)!).tensors.get(
            'prompt_embeddings',
          )!.data,
        );
      expect(config('').init_weights).toBe('zero');
      expect(prompt('').every((v) => v === 0)).toBe(true);
      expect('init_weights' in config('random/')).toBe(false);
      expect(prompt('random/').some((v) => v !== 0)).toBe(true);
      expect(PrefixTuningConfig.fromJson(config('')).initWeights).toBe('zero');
      peft.unload().dispose();
    },
  );

  it('typed errors: a model without attention, a token_dim the attention layers contradict', () => {
    const dense = denseOnly();
    expect(() => getPeftModel(dense, new PrefixTuningConfig({ numVirtualTokens: 2 }))).toThrow(
      NoAttentionLayerError,
    );
    const base = encoderClassifier();
    expect(() => getPeftModel(base, new PrefixTuningConfig({ numVirtualTokens: 2, numLayers: 3 }))).toThrow(
      TokenDimMismatchError,
    );
    dense.dispose();
    base.dispose();
  });
});
