// model.save() of a prompt-adapted model: refused with a typed error that says what to do instead
// (the adapter alone with saveAdapter, the base after unload). Not on the tensorflow backend: inside
// jest, tfjs-node's typed arrays make model.save fail before any layer is asked for its config.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel } from '@tfjs-peft/core';
import { describeEachBackend } from '@tfjs-peft/test-utils';
import { attentionOnly, encoderClassifier, lstmClassifier, VOCAB, WIDTH } from './__tests__/models';
import {
  PrefixTuningConfig,
  PromptEncoderConfig,
  PromptModelNotSerializableError,
  PromptTuningConfig,
} from './index';

/** Saves into memory and returns the artifacts' weight specs. */
async function saveToMemory(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | null = null;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return saved!;
}

describeEachBackend(
  'model.save() of prompt-adapted models',
  () => {
    it('is refused with PromptModelNotSerializableError; after unload() the base saves as before', async () => {
      const cases: Array<[tfl.LayersModel, PromptTuningConfig | PromptEncoderConfig | PrefixTuningConfig]> = [
        [lstmClassifier(VOCAB, WIDTH, 4, 2), new PromptTuningConfig({ numVirtualTokens: 2 })],
        [encoderClassifier(), new PromptEncoderConfig({ numVirtualTokens: 2 })],
        [attentionOnly(), new PrefixTuningConfig({ numVirtualTokens: 2 })],
      ];
      for (const [base, config] of cases) {
        const plain = await saveToMemory(base);
        const peft = getPeftModel(base, config);
        await expect(saveToMemory(peft.model)).rejects.toThrow(PromptModelNotSerializableError);
        await expect(saveToMemory(peft.model)).rejects.toThrow(/peft\.saveAdapter\(location\)/);
        const again = await saveToMemory(peft.unload());
        expect(again.modelTopology).toEqual(plain.modelTopology);
        expect(again.weightSpecs).toEqual(plain.weightSpecs);
        base.dispose();
      }
    });
  },
  { only: ['cpu', 'wasm', 'webgpu'] },
);
