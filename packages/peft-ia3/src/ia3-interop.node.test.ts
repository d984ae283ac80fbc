// Interop with Hugging Face PEFT 0.21: fixtures/ia3-mlp holds an IA³ adapter PEFT wrote for a torch
// MLP (IA3Config(target_modules=["fc1","fc2"], feedforward_modules=["fc2"]), vectors 1 + 0.5·N(0,1)).
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import * as path from 'node:path';
import { MemoryAdapterStore, PeftModel, parseSafetensors } from '@tfjs-peft/core';
import {
  buildTfjsModelFromFixture,
  describeEachBackend,
  expectTensorsClose,
  fixtureInputs,
  readSafetensorsFile,
  readTorchFixture,
  snapshotWeights,
  expectWeightsBitIdentical,
} from '@tfjs-peft/test-utils';
import { IA3Config, IA3Dense } from './index';

const FIXTURE = path.resolve(__dirname, '../../../fixtures/ia3-mlp');
/** The acceptance tolerance: PEFT's float32 outputs to 1e-5. */
const ATOL = 1e-5;

describeEachBackend('Hugging Face PEFT interop: IA³', () => {
  const fx = readTorchFixture(FIXTURE);

  async function expectOutputs(model: tfl.LayersModel, expected: number[][]) {
    const x = fixtureInputs(fx);
    const y = model.predict(x) as tf.Tensor;
    try {
      await expectTensorsClose(y, expected, ATOL);
    } finally {
      tf.dispose([x, y]);
    }
  }

  it('ia3-mlp: fromPretrained reproduces PEFT’s outputs, disabled, merged, unmerged and unloaded', async () => {
    const base = buildTfjsModelFromFixture(fx);
    await expectOutputs(base, fx.io.base_outputs);
    const original = await snapshotWeights(base);
    const peft = await PeftModel.fromPretrained(base, `file://${FIXTURE}`);
    const config = peft.peftConfig.default as IA3Config;
    expect(config).toBeInstanceOf(IA3Config);
    expect(config.feedforwardModules).toEqual(['fc2']);
    const layers = peft.peftLayers() as IA3Dense[];
    expect(layers.map((l) => [l.name, l.adapterSettings('default').feedforward])).toEqual([
      ['fc1', false],
      ['fc2', true],
    ]);
    await expectOutputs(peft.model, fx.io.adapter_outputs!);
    await peft.withAdapterDisabled(() => expectOutputs(peft.model, fx.io.base_outputs));
    await peft.mergeAdapter();
    await expectOutputs(peft.model, fx.io.merged_outputs!);
    peft.unmergeAdapter();
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    await expectOutputs(peft.model, fx.io.adapter_outputs!);
    const merged = await peft.mergeAndUnload();
    expect(merged).toBe(base);
    await expectOutputs(merged, fx.io.merged_outputs!);
    base.dispose();
  });

  it('ia3-mlp: saving it again writes PEFT’s keys, shapes and values', async () => {
    const base = buildTfjsModelFromFixture(fx);
    const peft = await PeftModel.fromPretrained(base, `file://${FIXTURE}`);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const ours = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    const theirs = readSafetensorsFile(path.join(FIXTURE, 'adapter_model.safetensors'));
    expect([...ours.tensors.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [key, tensor] of theirs) {
      expect(ours.tensors.get(key)!.shape).toEqual(tensor.shape);
      expect(Array.from(ours.tensors.get(key)!.data)).toEqual(Array.from(tensor.data));
    }
    const json = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(json).toMatchObject({ peft_type: 'IA3', feedforward_modules: ['fc2'], init_ia3_weights: true });
    expect([...json.target_modules].sort()).toEqual(['fc1', 'fc2']);
    peft.unload();
    base.dispose();
  });
});
