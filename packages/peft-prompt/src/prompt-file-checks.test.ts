// Loading a prompt adapter checks adapter_config.json against the file before anything is allocated
// (PeftMethod.checkConfigAgainstFile, SECURITY.md): a few bytes of config must not make the loader
// create tables or encoders far larger than the file holds. Also: prefix tuning's position offset.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  AdapterMismatchError,
  getPeftModel,
  MemoryAdapterStore,
  PeftConfigError,
  PeftModel,
  type PeftConfig,
} from '@tfjs-peft/core';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { attentionOnly, encoderClassifier, tokens, WIDTH } from './__tests__/models';
import {
  MAX_ENCODER_HIDDEN_SIZE,
  PrefixPositionOffset,
  PrefixTuningConfig,
  PromptEncoderConfig,
  PromptTuningConfig,
} from './index';

/** Saves a fresh adapter of `config` on `base` and returns the store (the base is left unadapted). */
async function savedAdapter(base: tfl.LayersModel, config: PeftConfig): Promise<MemoryAdapterStore> {
  const peft = getPeftModel(base, config);
  const store = new MemoryAdapterStore('memory://prompt-file-checks');
  await peft.saveAdapter(store);
  peft.unload();
  return store;
}

function editConfig(store: MemoryAdapterStore, edit: Record<string, unknown>): void {
  const json = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')!)) as Record<
    string,
    unknown
  >;
  store.files.set('adapter_config.json', new TextEncoder().encode(JSON.stringify({ ...json, ...edit })));
}

/** The load is refused with `error`, and not one tensor or byte was allocated; the base is bit-identical. */
async function expectRefusedWithoutAllocating(
  base: tfl.LayersModel,
  store: MemoryAdapterStore,
  error: new (...args: never[]) => Error,
  message: RegExp,
): Promise<void> {
  const before = await snapshotWeights(base);
  const memory = tf.memory();
  const load = PeftModel.fromPretrained(base, store);
  await expect(load).rejects.toThrow(error);
  await expect(load).rejects.toThrow(message);
  expect(tf.memory().numTensors).toBe(memory.numTensors);
  expect(tf.memory().numBytes).toBe(memory.numBytes);
  expectWeightsBitIdentical(before, await snapshotWeights(base));
}

const METHODS: [string, () => PeftConfig][] = [
  ['prompt tuning', () => new PromptTuningConfig({ numVirtualTokens: 2 })],
  ['P-tuning (MLP)', () => new PromptEncoderConfig({ numVirtualTokens: 2 })],
  ['P-tuning (LSTM)', () => new PromptEncoderConfig({ numVirtualTokens: 2, encoderReparameterizationType: 'LSTM' })],
  ['prefix tuning', () => new PrefixTuningConfig({ numVirtualTokens: 2 })],
  ['prefix tuning (projection)', () => new PrefixTuningConfig({ numVirtualTokens: 2, prefixProjection: true })],
];

describeEachBackend('Prompt adapters: config checked against the file before allocation', () => {
  it.each(METHODS)(
    '%s: num_virtual_tokens edited to 60000 is refused naming prompt_embeddings; nothing allocated',
    async (_, config) => {
      const base = encoderClassifier();
      const store = await savedAdapter(base, config());
      editConfig(store, { num_virtual_tokens: 60000 });
      await expectRefusedWithoutAllocating(
        base,
        store,
        AdapterMismatchError,
        /prompt_embeddings.*has shape \[2, \d+\] but adapter_config\.json's num_virtual_tokens is 60000/,
      );
      base.dispose();
    },
  );

  it('a file whose prompt rows are wider than the model is refused before allocation', async () => {
    const base = encoderClassifier();
    const store = await savedAdapter(base, new PrefixTuningConfig({ numVirtualTokens: 2 }));
    // A prefix file (rows 2·2·8 = 32 wide) given to prompt tuning, whose rows are the embedding's 8.
    editConfig(store, { peft_type: 'PROMPT_TUNING', encoder_hidden_size: undefined, prefix_projection: undefined });
    await expectRefusedWithoutAllocating(
      base,
      store,
      AdapterMismatchError,
      /prompt_embeddings.*has 32 columns but this model's PROMPT_TUNING prompt rows are 8 wide/,
    );
    base.dispose();
  });

  it.each([
    ['P-tuning', () => new PromptEncoderConfig({ numVirtualTokens: 2 })],
    ['prefix tuning', () => new PrefixTuningConfig({ numVirtualTokens: 2, prefixProjection: true })],
  ])('%s: encoder_hidden_size beyond the bound is a PeftConfigError; nothing allocated', async (_, config) => {
    const base = encoderClassifier();
    const store = await savedAdapter(base, config());
    editConfig(store, { encoder_hidden_size: 1e6 });
    await expectRefusedWithoutAllocating(
      base,
      store,
      PeftConfigError,
      new RegExp(`encoderHiddenSize.*\\[1, ${MAX_ENCODER_HIDDEN_SIZE}\\]`),
    );
    base.dispose();
  });

  it.each([
    ['P-tuning (LSTM)', () => new PromptEncoderConfig({ numVirtualTokens: 2, encoderReparameterizationType: 'LSTM' })],
    ['prefix tuning (projection)', () => new PrefixTuningConfig({ numVirtualTokens: 2, prefixProjection: true })],
  ])(
    '%s: loading builds no encoder (the file holds its output), even at the largest encoder_hidden_size',
    async (_, config) => {
      const base = encoderClassifier();
      const peft = getPeftModel(base, config());
      const [ids, mask] = tokens([5, 3], 6);
      const expected = peft.model.predict([ids, mask]) as tf.Tensor;
      const store = new MemoryAdapterStore('memory://prompt-file-checks');
      await peft.saveAdapter(store);
      const rowWidth = config() instanceof PrefixTuningConfig ? 2 * 2 * WIDTH : WIDTH;
      peft.unload();
      editConfig(store, { encoder_hidden_size: MAX_ENCODER_HIDDEN_SIZE });
      const memory = tf.memory();
      const loaded = await PeftModel.fromPretrained(base, store);
      // Only the [2, rowWidth] table: no MLP/LSTM of 16384 hidden units.
      expect(tf.memory().numBytes - memory.numBytes).toBe(2 * rowWidth * 4);
      expect(loaded.getNbTrainableParameters().allParams).toBeGreaterThan(0);
      const again = loaded.model.predict([ids, mask]) as tf.Tensor;
      await expectTensorsClose(again, expected, 1e-6);
      tf.dispose([ids, mask, expected, again]);
      loaded.unload().dispose();
    },
  );
});

describeEachBackend('Prefix tuning: the real tokens take positions n.. after the prefixes', () => {
  it('the offset follows the active prefixes (3, 2, 3 + 2), 0 when disabled; base output exact then', async () => {
    const base = encoderClassifier();
    const [ids, mask] = tokens([5, 3], 6);
    const baseOut = base.predict([ids, mask]) as tf.Tensor;
    const peft = getPeftModel(base, new PrefixTuningConfig({ numVirtualTokens: 3 }));
    peft.addAdapter('b', new PrefixTuningConfig({ numVirtualTokens: 2 }));
    const shifters = peft.model.layers.filter((l): l is PrefixPositionOffset => l instanceof PrefixPositionOffset);
    expect(shifters.map((l) => l.baseLayer.getClassName())).toEqual(['TokenAndPositionEmbedding']);
    const [shifter] = shifters;
    expect(shifter.positionOffset).toBe(3);
    peft.setAdapter('b');
    expect(shifter.positionOffset).toBe(2);
    peft.setAdapter(['default', 'b']);
    expect(shifter.positionOffset).toBe(5);
    const disabled = peft.withAdapterDisabled(() => {
      expect(shifter.positionOffset).toBe(0);
      return peft.model.predict([ids, mask]) as tf.Tensor;
    });
    await expectTensorsClose(disabled, baseOut, 0);
    tf.dispose([ids, mask, baseOut, disabled]);
    peft.unload().dispose();
  });

  it('a model without a position-embedding layer (a bare attention core) keeps its positions', () => {
    const peft = getPeftModel(attentionOnly(), new PrefixTuningConfig({ numVirtualTokens: 2 }));
    expect(peft.model.layers.some((l) => l instanceof PrefixPositionOffset)).toBe(false);
    peft.unload().dispose();
  });
});
