import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, MemoryAdapterStore, PeftModel, parseSafetensors } from '@tfjs-peft/core';
import {
  checkVariableGradients,
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraEmbedding } from './index';

/** Embedding → mean over tokens → Dense head. */
function makeModel(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.embedding({
        name: 'embed',
        inputDim: 20,
        outputDim: 6,
        inputLength: 5,
        embeddingsInitializer: tfl.initializers.randomNormal({ seed: 5 }),
      }),
      tfl.layers.globalAveragePooling1d({ name: 'pool' }),
      tfl.layers.dense({
        name: 'head',
        units: 2,
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 6 }),
      }),
    ],
  });
}

// Token 3 appears three times: its row's gradient must sum the three uses.
const tokens = () =>
  tf.tensor2d(
    [
      [3, 1, 3, 0, 19],
      [7, 3, 8, 8, 2],
    ],
    [2, 5],
    'int32',
  );
const predict = (m: tfl.LayersModel, x: tf.Tensor) => m.predict(x) as tf.Tensor;

describeEachBackend('LoRA on Embedding layers', () => {
  it('a new adapter is a no-op (A starts at zero); merged equals unmerged; unmerge is bit-exact', async () => {
    const base = makeModel();
    const original = await snapshotWeights(base);
    const x = tokens();
    const baseOut = predict(base, x);
    const fresh = getPeftModel(base, new LoraConfig({ r: 3, targetModules: ['embed'] }));
    expect(fresh.model.getLayer('embed')).toBeInstanceOf(LoraEmbedding);
    const freshOut = predict(fresh.model, x);
    await expectTensorsClose(freshOut, baseOut, 1e-6);
    fresh.unload();
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 3, loraAlpha: 6, targetModules: ['embed'], initLoraWeights: false }),
    );
    const unmerged = predict(peft.model, x);
    await peft.mergeAdapter();
    const merged = predict(peft.model, x);
    await expectTensorsClose(merged, unmerged, 1e-5);
    peft.unmergeAdapter();
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    tf.dispose([x, baseOut, freshOut, unmerged, merged]);
    peft.unload();
    base.dispose();
  });

  it("saves PEFT's lora_embedding_A [r, vocab] and lora_embedding_B [dim, r], and loads them back", async () => {
    const base = makeModel();
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 3, targetModules: ['embed'], initLoraWeights: false }),
    );
    const x = tokens();
    const saved = predict(peft.model, x);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const shapes = Object.fromEntries(
      [...parseSafetensors(store.files.get('adapter_model.safetensors')!).tensors].map(([k, v]) => [
        k,
        v.shape,
      ]),
    );
    expect(shapes).toEqual({
      'base_model.model.embed.lora_embedding_A': [3, 20],
      'base_model.model.embed.lora_embedding_B': [6, 3],
    });
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(base, store);
    const out = predict(reloaded.model, x);
    await expectTensorsClose(out, saved, 1e-6);
    tf.dispose([x, saved, out]);
    reloaded.unload();
    base.dispose();
  });

  it('gradients of A (summed over repeated tokens) and B match central finite differences', async () => {
    const base = makeModel();
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, targetModules: ['embed'], initLoraWeights: false }),
    );
    const x = tokens();
    const loss = () => tf.tidy(() => tf.sum(tf.square(predict(peft.model, x))) as tf.Scalar);
    await checkVariableGradients(loss, peft.trainableVariables, { epsilon: 1e-2, tolerance: 1e-2 });
    x.dispose();
    peft.unload();
    base.dispose();
  });
});
