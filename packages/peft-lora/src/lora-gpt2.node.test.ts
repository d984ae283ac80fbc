import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { getPeftModel, MemoryAdapterStore, parseSafetensors } from '@tfjs-peft/core';
import { loadGpt2, type HuggingFaceGpt2Config } from '@tfjs-peft/models';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraDense } from './index';

const FIXTURE = join(__dirname, '../../../fixtures/tiny-gpt2');
const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as HuggingFaceGpt2Config;

describeEachBackend('LoRA on GPT-2’s c_attn (fixtures/tiny-gpt2 through loadGpt2)', () => {
  it('targets c_attn as PEFT GPT-2 configs do, trains only the adapter, leaks nothing, saves PEFT’s keys', async () => {
    const base = await loadGpt2(FIXTURE);
    const before = await snapshotWeights(base);
    const peft = getPeftModel(base, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['c_attn'] }));
    expect(peft.model.layers.filter((l) => l instanceof LoraDense).map((l) => l.name)).toEqual([
      'transformer/h/0/attn/c_attn',
      'transformer/h/1/attn/c_attn',
    ]);
    const ids = tf.tensor2d(
      [
        [5, 12, 7, 33, 41],
        [3, 44, 21, 8, 0],
      ],
      undefined,
      'int32',
    );
    const mask = tf.tensor2d([
      [1, 1, 1, 1, 1],
      [1, 1, 1, 1, 0],
    ]);
    const targets = tf.tidy(() =>
      tf.oneHot(
        tf.tensor2d(
          [
            [12, 7, 33, 41, 2],
            [44, 21, 8, 30, 0],
          ],
          undefined,
          'int32',
        ),
        config.vocab_size,
      ),
    );
    // A new adapter leaves the logits unchanged.
    const plain = base.predict([ids, mask]) as tf.Tensor;
    const adapted = peft.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(adapted, plain, 1e-6);
    const optimizer = tf.train.adam(0.02);
    const variables = peft.trainableVariables;
    expect(variables.length).toBe(4);
    const step = () =>
      optimizer.minimize(
        () =>
          tf.losses.softmaxCrossEntropy(
            targets,
            peft.model.apply([ids, mask], { training: true }) as tf.Tensor,
          ) as tf.Scalar,
        true,
        variables,
      ) as tf.Scalar;
    tf.dispose(step()); // the first step creates Adam's slots
    const count = tf.memory().numTensors;
    const losses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const loss = step();
      losses.push((await loss.data())[0]);
      loss.dispose();
      expect(tf.memory().numTensors).toBe(count);
    }
    expect(losses[3]).toBeLessThan(losses[0]);
    expectWeightsBitIdentical(before, await snapshotWeights(base));

    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const keys = [...parseSafetensors(store.files.get('adapter_model.safetensors')!).tensors.keys()].sort();
    expect(keys).toEqual([
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight',
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight',
      'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight',
      'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight',
    ]);
    tf.dispose([ids, mask, targets, plain, adapted]);
    optimizer.dispose();
    peft.unload();
    base.dispose();
  });
});
