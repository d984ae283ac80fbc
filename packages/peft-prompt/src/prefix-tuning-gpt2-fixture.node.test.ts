import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MemoryAdapterStore, parseSafetensors, PeftModel, rebuildModel } from '@tfjs-peft/core';
import { gpt2LayerNames, loadGpt2 } from '@tfjs-peft/models';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { PrefixAttention, PrefixTuningConfig } from './index';

const FIXTURE = resolve(__dirname, '../../../fixtures/prefix-tuning-gpt2');
const BASE = resolve(__dirname, '../../../fixtures/tiny-gpt2');

interface Io {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  base_outputs: { logits: number[][][] };
  adapter_outputs: { logits: number[][][] };
  position_offset: number;
}

const io = JSON.parse(readFileSync(join(FIXTURE, 'io.json'), 'utf8')) as Io;

/** Calls a TokenAndPositionEmbedding with `positionOffset` (tfjs's predict passes no per-node kwargs). */
class ShiftedPositions extends tfl.layers.Layer {
  constructor(
    private readonly embedding: tfl.layers.Layer,
    private readonly offset: number,
  ) {
    super({ name: `${embedding.name}/shifted` });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.embedding.computeOutputShape(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    return this.embedding.call(inputs, { positionOffset: this.offset });
  }
}

/**
 * The same graph with the real tokens at positions offset.. — what transformers' GPT-2 does after
 * `past_key_values` (PEFT passes the prefixes that way and no `position_ids`).
 */
function withPositionOffset(model: tfl.LayersModel, offset: number): tfl.LayersModel {
  return rebuildModel(model, (layer, inputs) =>
    layer.name === gpt2LayerNames.embeddings
      ? (new ShiftedPositions(layer, offset).apply(inputs) as tfl.SymbolicTensor)
      : undefined,
  );
}

async function maxAbsDifference(a: tf.Tensor, expected: number[][][]): Promise<number> {
  const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(a, tf.tensor3d(expected)))));
  const value = (await difference.data())[0];
  difference.dispose();
  return value;
}

/**
 * The fixture's files in memory, without the one config field PEFT 0.21 writes for prefix tuning
 * that PrefixTuningConfig.fromJson does not know yet (`init_weights: null`, PEFT's default).
 */
async function fixtureStoreWithoutInitWeights(): Promise<MemoryAdapterStore> {
  const config = JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  expect(config.init_weights).toBeNull();
  delete config.init_weights;
  const store = new MemoryAdapterStore('memory://prefix-tuning-gpt2-fixture');
  await store.writeFiles(
    new Map([
      ['adapter_config.json', new TextEncoder().encode(JSON.stringify(config))],
      ['adapter_model.safetensors', new Uint8Array(readFileSync(join(FIXTURE, 'adapter_model.safetensors')))],
    ]),
  );
  return store;
}

describeEachBackend('PEFT prefix-tuning-gpt2 fixture (written by Hugging Face PEFT 0.21)', () => {
  let base: tfl.LayersModel;
  let peft: PeftModel;
  let ids: tf.Tensor;
  let mask: tf.Tensor;

  beforeAll(async () => {
    base = await loadGpt2(BASE);
    peft = await PeftModel.fromPretrained(base, await fixtureStoreWithoutInitWeights());
    ids = tf.tensor2d(io.inputs.input_ids, undefined, 'int32');
    mask = tf.tensor2d(io.inputs.attention_mask, undefined, 'float32');
    // One forward pass first: the frozen Dense path caches its kernels' transposes on wasm (held
    // until unload), which the per-test tensor count would otherwise see as a leak.
    (peft.model.predict([ids, mask]) as tf.Tensor).dispose();
  });

  afterAll(() => {
    tf.dispose([ids, mask]);
    peft.unload().dispose();
  });

  // Pinned gap: PEFT 0.21 writes `init_weights: null` into a prefix-tuning adapter_config.json and
  // PrefixTuningConfig.fromJson refuses the field. When it accepts null, make this a plain `it`.
  it.failing('loads adapter_config.json exactly as PEFT wrote it', async () => {
    const other = await loadGpt2(BASE);
    try {
      const loaded = await PeftModel.fromPretrained(other, `file://${FIXTURE}`);
      loaded.unload();
    } finally {
      other.dispose();
    }
  });

  it('loads prompt_embeddings [3, 64] onto the two c_attn attention cores, config as PEFT wrote it', () => {
    expect(peft.peftType).toBe('PREFIX_TUNING');
    const config = peft.peftConfig.default as PrefixTuningConfig;
    expect([config.numVirtualTokens, config.tokenDim, config.numLayers, config.numAttentionHeads]).toEqual([
      3, 16, 2, 2,
    ]);
    expect(peft.model.layers.filter((l) => l instanceof PrefixAttention).map((l) => l.name)).toEqual([
      'transformer/h/0/attn/core/prefix',
      'transformer/h/1/attn/core/prefix',
    ]);
  });

  it("reproduces PEFT's logits (≤1e-4) with the tokens at positions 3.. as transformers numbers them", async () => {
    const shifted = withPositionOffset(peft.model, io.position_offset);
    const logits = shifted.predict([ids, mask]) as tf.Tensor;
    expect(logits.shape).toEqual([2, 8, 50]);
    await expectTensorsClose(logits, io.adapter_outputs.logits, 1e-4);
    logits.dispose();
  });

  // Pinned gap: peft-prompt's prefix tuning keeps the tokens at positions 0.., while transformers'
  // GPT-2 (and BERT) number them after the prefixes. When the prefix method passes
  // `positionOffset` to the TokenAndPositionEmbedding, this passes: make it a plain `it`.
  it.failing("reproduces PEFT's logits (≤1e-4) through peft.model itself", async () => {
    const logits = peft.model.predict([ids, mask]) as tf.Tensor;
    const difference = await maxAbsDifference(logits, io.adapter_outputs.logits);
    logits.dispose();
    expect(difference).toBeLessThanOrEqual(1e-4);
  });

  it('with the adapter disabled gives the base logits; saving again writes the same prompt_embeddings', async () => {
    const before = await snapshotWeights(base);
    const baseLogits = peft.withAdapterDisabled(() => peft.model.predict([ids, mask]) as tf.Tensor);
    await expectTensorsClose(baseLogits, io.base_outputs.logits, 1e-4);
    baseLogits.dispose();
    const store = new MemoryAdapterStore('memory://prefix-gpt2');
    await peft.saveAdapter(store);
    const saved = parseSafetensors((await store.readFile('adapter_model.safetensors', 1 << 20))!);
    const original = parseSafetensors(
      new Uint8Array(readFileSync(join(FIXTURE, 'adapter_model.safetensors'))),
    );
    expect([...saved.tensors.keys()]).toEqual(['prompt_embeddings']);
    expect(saved.tensors.get('prompt_embeddings')!.shape).toEqual([3, 64]);
    expect(Array.from(saved.tensors.get('prompt_embeddings')!.data)).toEqual(
      Array.from(original.tensors.get('prompt_embeddings')!.data),
    );
    expectWeightsBitIdentical(before, await snapshotWeights(base));
  });
});
