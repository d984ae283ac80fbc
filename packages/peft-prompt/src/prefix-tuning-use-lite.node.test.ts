// Prefix tuning on the real Universal Sentence Encoder lite (@tfjs-peft/models), whose two attention
// layers have different widths (256, then 512): the prefix is [n, 2·256 + 2·512], layer 0's key and
// value columns then layer 1's, and the per-layer widths are saved as `tfjs_peft_layer_token_dims`.
import * as tf from '@tensorflow/tfjs-core';
import { getPeftModel, MemoryAdapterStore, parseSafetensors, PeftModel } from '@tfjs-peft/core';
import { loadUniversalSentenceEncoderLite } from '@tfjs-peft/models';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { PrefixAttention, PrefixTuningConfig, TokenDimMismatchError } from './index';

describeEachBackend(
  'Prefix tuning on the Universal Sentence Encoder lite (per-layer attention widths)',
  () => {
    it('trains a step (base bit-identical); save → load reproduces outputs; contradicting widths are refused', async () => {
      const { model, tokenizer } = await loadUniversalSentenceEncoderLite();
      const batch = tokenizer.encode(['How old are you?', 'The cat sat on the mat.'], 8);
      const inputs = [batch.tokenIds, batch.attentionMask];
      const before = await snapshotWeights(model);

      expect(() =>
        getPeftModel(model, new PrefixTuningConfig({ numVirtualTokens: 2, layerTokenDims: [256, 256] })),
      ).toThrow(TokenDimMismatchError);
      expect(() =>
        getPeftModel(model, new PrefixTuningConfig({ numVirtualTokens: 2, tokenDim: 512 })),
      ).toThrow(/"token_dim" is 512 but attention layer .* has 256/);

      const peft = getPeftModel(model, new PrefixTuningConfig({ numVirtualTokens: 4 }));
      const config = peft.peftConfig.default as PrefixTuningConfig;
      expect([config.tokenDim, config.numLayers, config.layerTokenDims]).toEqual([256, 2, [256, 512]]);
      expect(peft.getNbTrainableParameters().trainableParams).toBe(4 * (2 * 256 + 2 * 512));
      const offsets = peft
        .peftLayers()
        .filter((l): l is PrefixAttention & typeof l => l instanceof PrefixAttention)
        .map((l) => [l.width, l.offset]);
      expect(offsets).toEqual([
        [256, 0],
        [512, 512],
      ]);

      // One training step: pull the two sentence embeddings together.
      const prefix0 = tf.clone(peft.trainableVariables[0]);
      const optimizer = tf.train.adam(0.01);
      const loss = optimizer.minimize(
        () => {
          const out = peft.model.predict(inputs) as tf.Tensor2D;
          return tf.neg(
            tf.sum(tf.mul(tf.slice(out, [0, 0], [1, -1]), tf.slice(out, [1, 0], [1, -1]))),
          ) as tf.Scalar;
        },
        true,
        peft.trainableVariables,
      )!;
      const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(peft.trainableVariables[0], prefix0))));
      expect((await moved.data())[0]).toBeGreaterThan(0);
      expect(Number.isFinite((await loss.data())[0])).toBe(true);
      expectWeightsBitIdentical(before, await snapshotWeights(model));

      const expected = peft.model.predict(inputs) as tf.Tensor;
      const store = new MemoryAdapterStore('memory://prefix-use-lite');
      await peft.saveAdapter(store);
      const json = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')!));
      expect(json).toMatchObject({
        peft_type: 'PREFIX_TUNING',
        token_dim: 256,
        num_layers: 2,
        tfjs_peft_layer_token_dims: [256, 512],
      });
      const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
      expect([...file.tensors.keys()]).toEqual(['prompt_embeddings']);
      expect(file.tensors.get('prompt_embeddings')!.shape).toEqual([4, 1536]);
      const base = peft.unload();
      const loaded = await PeftModel.fromPretrained(base, store);
      const again = loaded.model.predict(inputs) as tf.Tensor;
      await expectTensorsClose(again, expected, 1e-6);

      optimizer.dispose();
      tf.dispose([prefix0, loss, moved, expected, again, ...inputs]);
      loaded.unload().dispose();
    }, 300_000);
  },
  // The encoder is large for the cpu backend (tens of seconds per batch there); wasm and tfjs-node run it.
  { only: ['wasm', 'tensorflow'] },
);
