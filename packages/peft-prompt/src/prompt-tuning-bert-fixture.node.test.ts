import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { bertFromHuggingFace, type HuggingFaceBertConfig } from '@tfjs-peft/models';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { MemoryAdapterStore, parseSafetensors, PeftModel } from '@tfjs-peft/core';
// The side-effect import registers the prompt methods with peft-core.
import './index';
import type { PromptTuningConfig } from './index';

const FIXTURE = resolve(__dirname, '../../../fixtures/prompt-tuning-bert');

interface Io {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  base_outputs: { logits: number[][] };
  adapter_outputs: { logits: number[][]; last_hidden_state: number[][][] };
}

describeEachBackend('PEFT prompt-tuning-bert fixture (written by Hugging Face PEFT 0.21)', () => {
  const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as HuggingFaceBertConfig;
  const io = JSON.parse(readFileSync(join(FIXTURE, 'io.json'), 'utf8')) as Io;
  const bytes = new Uint8Array(readFileSync(join(FIXTURE, 'model.safetensors')));

  it("loads prompt_embeddings + base_model.classifier.* and reproduces PEFT's logits (≤1e-4); disabled = base", async () => {
    const base = bertFromHuggingFace(config, bytes);
    const before = await snapshotWeights(base);
    // Through peft-core's own loader: the prompt methods map PEFT's bare `prompt_embeddings` key.
    const peft = await PeftModel.fromPretrained(base, `file://${FIXTURE}`);
    expect(peft.peftType).toBe('PROMPT_TUNING');
    const cfg = peft.peftConfig.default as PromptTuningConfig;
    expect([cfg.numVirtualTokens, cfg.tokenDim, cfg.numLayers, cfg.numAttentionHeads]).toEqual([3, 16, 2, 2]);
    expect(cfg.modulesToSave).toEqual(['classifier']);
    const ids = tf.tensor2d(io.inputs.input_ids, undefined, 'int32');
    const mask = tf.tensor2d(io.inputs.attention_mask, undefined, 'float32');
    const logits = peft.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(logits, io.adapter_outputs.logits, 1e-4);
    const baseLogits = peft.withAdapterDisabled(() => peft.model.predict([ids, mask]) as tf.Tensor);
    await expectTensorsClose(baseLogits, io.base_outputs.logits, 1e-4);

    // Saved again: PEFT's keys and shapes, the same values.
    const store = new MemoryAdapterStore('memory://prompt-bert');
    await peft.saveAdapter(store);
    const saved = parseSafetensors((await store.readFile('adapter_model.safetensors', 1 << 20))!);
    const original = parseSafetensors(
      new Uint8Array(readFileSync(join(FIXTURE, 'adapter_model.safetensors'))),
    );
    expect([...saved.tensors.keys()].sort()).toEqual([...original.tensors.keys()].sort());
    for (const [key, t] of original.tensors)
      expect(Array.from(saved.tensors.get(key)!.data)).toEqual(Array.from(t.data));
    const json = JSON.parse(
      new TextDecoder().decode((await store.readFile('adapter_config.json', 1 << 20))!),
    );
    expect(json).toMatchObject({
      peft_type: 'PROMPT_TUNING',
      num_virtual_tokens: 3,
      token_dim: 16,
      num_layers: 2,
      num_attention_heads: 2,
      prompt_tuning_init: 'RANDOM',
      task_type: 'SEQ_CLS',
    });

    tf.dispose([ids, mask, logits, baseLogits]);
    const unloaded = peft.unload();
    expectWeightsBitIdentical(before, await snapshotWeights(unloaded));
    unloaded.dispose();
  });
});
