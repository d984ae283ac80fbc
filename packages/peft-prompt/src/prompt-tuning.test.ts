import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  countParameters,
  getPeftModel,
  MemoryAdapterStore,
  parseSafetensors,
  PeftConfigError,
  PeftModel,
} from '@tfjs-peft/core';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { denseOnly, encoderClassifier, lstmClassifier, tokens, VOCAB, WIDTH } from './__tests__/models';
import {
  NoEmbeddingLayerError,
  PromptEmbedding,
  promptFromPretrained,
  PromptNotMergeableError,
  PromptTuningConfig,
  savePromptAdapter,
  TokenDimMismatchError,
} from './index';

function promptLayer(model: tfl.LayersModel): PromptEmbedding {
  return model.layers.find((l): l is PromptEmbedding => l instanceof PromptEmbedding)!;
}

async function values(t: tf.Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

describeEachBackend('Prompt tuning', () => {
  it('on the peft-models encoder: n·dim trainable parameters, only the prompt trains, base bit-identical', async () => {
    const base = encoderClassifier();
    const before = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new PromptTuningConfig({ numVirtualTokens: 4, promptTuningInit: 'sampleVocab' }),
    );
    const baseParams = countParameters(base).allParams;
    expect(peft.getNbTrainableParameters()).toEqual({
      trainableParams: 4 * WIDTH,
      allParams: baseParams + 4 * WIDTH,
      trainablePercent: (100 * 4 * WIDTH) / (baseParams + 4 * WIDTH),
    });
    const lines: string[] = [];
    peft.printTrainableParameters((l) => lines.push(l));
    expect(lines[0]).toMatch(/^trainable params: 32 \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
    expect(peft.model.trainableWeights.map((w) => w.name)).toEqual([
      expect.stringMatching(/prompt_embeddings_default/),
    ]);

    const [ids, mask] = tokens([5, 3, 6, 2], 6);
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([0, 1, 2, 1], 'int32'), 3));
    const prompt0 = await values(promptLayer(peft.model).adapterVariables('default')[0].read());
    peft.model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
    const history = await peft.model.fit([ids, mask], labels, { epochs: 15, batchSize: 4, verbose: 0 });
    const losses = history.history.loss as number[];
    expect(losses[14]).toBeLessThan(losses[0]);
    const prompt1 = await values(promptLayer(peft.model).adapterVariables('default')[0].read());
    expect(prompt1).not.toEqual(prompt0);
    expectWeightsBitIdentical(before, await snapshotWeights(base));
    (peft.model.optimizer as tf.Optimizer).dispose();
    tf.dispose([ids, mask, labels]);
    peft.unload().dispose();
  });

  it('padding does not change the output; every real token attends to the virtual tokens', async () => {
    const base = encoderClassifier('none');
    const peft = getPeftModel(base, new PromptTuningConfig({ numVirtualTokens: 3 }));
    const [ids, mask] = tokens([4], 4);
    const [idsPadded, maskPadded] = tokens([4], 7);
    const out = peft.model.predict([ids, mask]) as tf.Tensor;
    const padded = peft.model.predict([idsPadded, maskPadded]) as tf.Tensor;
    expect(out.shape).toEqual([1, 3 + 4, WIDTH]);
    const head = tf.slice(padded, [0, 0, 0], [1, 7, WIDTH]);
    await expectTensorsClose(head, out, 1e-5);
    // Changing the prompt changes every real token's output.
    const variable = promptLayer(peft.model).adapterVariables('default')[0];
    const original = tf.clone(variable.read());
    const perturbed = tf.tidy(() => tf.add(original, tf.randomNormal(original.shape)));
    variable.write(perturbed);
    const changed = peft.model.predict([ids, mask]) as tf.Tensor;
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(changed, out)), 2));
    const perToken = await values(diff);
    expect(perToken.slice(3).every((d) => d > 1e-4)).toBe(true);
    variable.write(original);
    tf.dispose([ids, mask, idsPadded, maskPadded, out, padded, head, original, changed, diff, perturbed]);
    peft.unload().dispose();
  });

  it("'text' init reproduces the model's embeddings of the text exactly (cut and repeated as PEFT)", async () => {
    const tokenizer = (text: string) => text.split(' ').map((w) => (w.length * 3) % VOCAB);
    for (const model of [encoderClassifier(), lstmClassifier(VOCAB, WIDTH, 4, 2)]) {
      const peft = getPeftModel(
        model,
        new PromptTuningConfig({
          numVirtualTokens: 5,
          promptTuningInit: 'text',
          promptTuningInitText: 'ab abc a',
          tokenizer,
        }),
      );
      const ids = [6, 9, 3, 6, 9]; // 'ab abc a' → [6, 9, 3], repeated to 5
      const prompt = promptLayer(peft.model).adapterVariables('default')[0].read();
      const embeddingLayer = model.getLayer(model.layers.find((l) => /embedding/.test(l.name))!.name);
      const table = embeddingLayer.weights[0].read();
      const expected = tf.tidy(() => tf.gather(table, tf.tensor1d(ids, 'int32')));
      expect(await values(prompt)).toEqual(await values(expected));
      expected.dispose();
      peft.unload().dispose();
    }
  });

  it('save → load gives identical outputs; several named prompts; switching; deleting', async () => {
    const base = encoderClassifier();
    const [ids, mask] = tokens([5, 2], 5);
    const peft = getPeftModel(base, new PromptTuningConfig({ numVirtualTokens: 2 }));
    peft.addAdapter('other', new PromptTuningConfig({ numVirtualTokens: 5 }));
    const first = peft.model.predict([ids, mask]) as tf.Tensor;
    peft.setAdapter('other');
    const second = peft.model.predict([ids, mask]) as tf.Tensor;
    expect(await values(first)).not.toEqual(await values(second));
    expect(peft.getNbTrainableParameters().trainableParams).toBe(5 * WIDTH);
    const store = new MemoryAdapterStore('memory://prompt-two');
    await peft.saveAdapter(store);
    const baseOut = peft.withAdapterDisabled(() => peft.model.predict([ids, mask]) as tf.Tensor);
    peft.unload();

    const loaded = await PeftModel.fromPretrained(base, store);
    await loaded.loadAdapter(store, 'other', { subfolder: 'other' });
    const reloaded = loaded.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(reloaded, first, 0);
    loaded.setAdapter('other');
    const again = loaded.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(again, second, 0);
    loaded.deleteAdapter('default');
    loaded.deleteAdapter('other');
    const plain = loaded.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(plain, baseOut, 0);
    await expect(loaded.mergeAdapter()).resolves.toBeUndefined();
    tf.dispose([ids, mask, first, second, baseOut, again, plain, reloaded]);
    loaded.unload().dispose();
  });

  it("peft.saveAdapter writes PEFT's keys; the deprecated savePromptAdapter/promptFromPretrained still work", async () => {
    const base = encoderClassifier();
    const [ids, mask] = tokens([4, 2], 4);
    const peft = getPeftModel(base, new PromptTuningConfig({ numVirtualTokens: 3, modulesToSave: ['classifier'] }));
    const out = peft.model.predict([ids, mask]) as tf.Tensor;
    const store = new MemoryAdapterStore('memory://prompt-keys');
    await peft.saveAdapter(store);
    const keys = [...parseSafetensors(store.files.get('adapter_model.safetensors')!).tensors.keys()].sort();
    expect(keys).toEqual(['base_model.classifier.bias', 'base_model.classifier.weight', 'prompt_embeddings']);
    const viaWrapper = new MemoryAdapterStore('memory://prompt-keys-wrapper');
    await savePromptAdapter(peft, viaWrapper);
    expect(viaWrapper.files.get('adapter_model.safetensors')).toEqual(store.files.get('adapter_model.safetensors'));
    peft.unload();
    const loaded = await promptFromPretrained(base, store);
    const again = loaded.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(again, out, 0);
    tf.dispose([ids, mask, out, again]);
    loaded.unload().dispose();
  });

  it('typed errors: zero tokens, token dim mismatch, no embedding layer, merge', async () => {
    expect(() => new PromptTuningConfig({ numVirtualTokens: 0 })).toThrow(PeftConfigError);
    expect(
      () =>
        new PromptTuningConfig({ numVirtualTokens: 2, promptTuningInit: 'text', promptTuningInitText: 'x' }),
    ).toThrow(/tokenizer/);
    const base = encoderClassifier();
    expect(() => getPeftModel(base, new PromptTuningConfig({ numVirtualTokens: 2, tokenDim: 7 }))).toThrow(
      TokenDimMismatchError,
    );
    expect(() => getPeftModel(base, new PromptTuningConfig({ numVirtualTokens: 2, tokenDim: 7 }))).toThrow(
      /"token_dim" is 7 but embedding layer "embeddings" has 8/,
    );
    const dense = denseOnly();
    expect(() => getPeftModel(dense, new PromptTuningConfig({ numVirtualTokens: 2 }))).toThrow(
      NoEmbeddingLayerError,
    );
    const peft = getPeftModel(base, new PromptTuningConfig({ numVirtualTokens: 2 }));
    await expect(peft.mergeAdapter()).rejects.toThrow(/cannot be merged/);
    expect(PromptNotMergeableError).toBeDefined();
    peft.unload().dispose();
    dense.dispose();
  });
});
