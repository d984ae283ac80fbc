import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { MemoryAdapterStore, parseSafetensors, PeftConfigError, PeftModel } from '@tfjs-peft/core';
import { gpt2LayerNames, loadGpt2 } from '@tfjs-peft/models';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { PrefixAttention, PrefixPositionOffset, PrefixTuningConfig } from './index';

const FIXTURE = resolve(__dirname, '../../../fixtures/prefix-tuning-gpt2');
const BASE = resolve(__dirname, '../../../fixtures/tiny-gpt2');

interface Io {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  base_outputs: { logits: number[][][] };
  adapter_outputs: { logits: number[][][] };
  position_offset: number;
}

const io = JSON.parse(readFileSync(join(FIXTURE, 'io.json'), 'utf8')) as Io;

describeEachBackend('PEFT prefix-tuning-gpt2 fixture (written by Hugging Face PEFT 0.21)', () => {
  let base: tfl.LayersModel;
  let peft: PeftModel;
  let ids: tf.Tensor;
  let mask: tf.Tensor;

  beforeAll(async () => {
    base = await loadGpt2(BASE);
    peft = await PeftModel.fromPretrained(base, `file://${FIXTURE}`);
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

  it('reads adapter_config.json exactly as PEFT 0.21 wrote it (init_weights: null = random init, the default)', () => {
    const json = JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(json.init_weights).toBeNull();
    expect(PrefixTuningConfig.fromJson(json).initWeights).toBeNull();
    expect(PrefixTuningConfig.fromJson({ ...json, init_weights: 'zero' }).initWeights).toBe('zero');
    expect(() => PrefixTuningConfig.fromJson({ ...json, init_weights: 'gaussian' })).toThrow(PeftConfigError);
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

  it("reproduces PEFT's logits (≤1e-4): the real tokens at positions 3.., after the prefixes, as transformers numbers them", async () => {
    expect(io.position_offset).toBe(3);
    const shifter = peft.model.layers.find((l) => l instanceof PrefixPositionOffset) as PrefixPositionOffset;
    expect(shifter.baseLayer.name).toBe(gpt2LayerNames.embeddings);
    expect(shifter.positionOffset).toBe(io.position_offset);
    const logits = peft.model.predict([ids, mask]) as tf.Tensor;
    expect(logits.shape).toEqual([2, 8, 50]);
    await expectTensorsClose(logits, io.adapter_outputs.logits, 1e-4);
    logits.dispose();
  });

  it('with the adapter disabled gives the base logits; saving again writes the same prompt_embeddings', async () => {
    const before = await snapshotWeights(base);
    const shifter = peft.model.layers.find((l) => l instanceof PrefixPositionOffset) as PrefixPositionOffset;
    const baseLogits = peft.withAdapterDisabled(() => {
      expect(shifter.positionOffset).toBe(0);
      return peft.model.predict([ids, mask]) as tf.Tensor;
    });
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
