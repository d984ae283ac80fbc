import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend } from '@tfjs-peft/test-utils';
import { layerNames } from '../encoder/layer-names';
import { loadUniversalSentenceEncoderLite } from '../use-lite/load-universal-sentence-encoder-lite';
import { universalSentenceEncoderLiteConfig } from '../use-lite/use-lite-config';
import { sinusoidalPositions } from '../ops/sinusoidal-positions';
import { readUseLiteArtifacts, useLiteDir } from './support/use-lite-files';

describeEachBackend(
  'loadUniversalSentenceEncoderLite',
  () => {
    it('loads from the installed package, a folder, or memory, with the architecture read from the graph', async () => {
      for (const options of [undefined, { modelDir: useLiteDir }, { artifacts: readUseLiteArtifacts() }]) {
        const { model, tokenizer, config } = await loadUniversalSentenceEncoderLite(options);
        expect(config).toEqual({ ...universalSentenceEncoderLiteConfig, dropout: 0 });
        expect(tokenizer.vocabSize).toBe(8000); // the table has 2 more rows than the vocabulary
        expect(config.vocabSize).toBe(8002);
        expect(model.countParams()).toBe(6_975_744); // every float weight of the graph but its timing constants
        expect(model.outputs[0].shape).toEqual([null, 512]);
        expect(model.getLayer(layerNames.block(1).query).getWeights()[0].shape).toEqual([512, 512]);
        model.dispose();
      }
    });

    it('computes the same timing signal as the graph stores', async () => {
      const { modelJson, weightData } = readUseLiteArtifacts();
      const weights = tf.io.decodeWeights(
        tf.io.concatenateArrayBuffers(weightData as ArrayBuffer[]),
        modelJson.weightsManifest.flatMap((group) => group.weights),
      );
      const stored =
        weights[
          'module_apply_default/Encoder_en/KonaTransformer/Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1'
        ].dataSync();
      // Row 1 of the signal is [sin(t) …, cos(t) …] for the stored inverse timescales t.
      const rowTensor = tf.tidy(() => tf.slice(sinusoidalPositions(2, 256), [1, 0], [1, 128]));
      const row = rowTensor.dataSync();
      rowTensor.dispose();
      let worst = 0;
      stored.forEach((t, i) => (worst = Math.max(worst, Math.abs(Math.sin(t) - row[i]))));
      expect(worst).toBeLessThan(1e-6);
      tf.dispose(Object.values(weights));
    });

    it('encodes a padded batch with a mask, truncating at maxLength', async () => {
      const { tokenizer, model } = await loadUniversalSentenceEncoderLite({
        artifacts: readUseLiteArtifacts(),
      });
      const batch = tokenizer.encode(['How old are you?', 'Hi', '漢字 😀'], 4);
      expect(await batch.tokenIds.array()).toEqual([
        [728, 446, 31, 19],
        [tokenizer.tokenize('Hi')[0], 0, 0, 0],
        [...tokenizer.tokenize('漢字 😀'), 0, 0, 0, 0].slice(0, 4),
      ]);
      expect(batch.lengths).toEqual([4, 1, Math.min(4, tokenizer.tokenize('漢字 😀').length)]);
      expect(batch.attentionMask.shape).toEqual([3, 4]);
      tf.dispose([batch.tokenIds, batch.attentionMask]);
      model.dispose();
    });
  },
  { only: ['wasm'] },
);
