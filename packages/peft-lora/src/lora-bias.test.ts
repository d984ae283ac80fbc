import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  AdapterMismatchError,
  getPeftModel,
  MemoryAdapterStore,
  parseSafetensors,
  PeftConfigError,
  PeftModel,
  serializeSafetensors,
} from '@tfjs-peft/core';
import {
  checkVariableGradients,
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  makeSoakMlp,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraDense, type LoraBias } from './index';

/** fc1 (12, relu) → fc2 (8, tanh) → head (3), every layer with a non-zero bias. */
const makeMlp = () => makeSoakMlp(7, { randomBiases: true });

function inputs(rows = 5): tf.Tensor2D {
  return tf.tidy(() => tf.sin(tf.reshape(tf.range(0, rows * 6, 1, 'float32'), [rows, 6])) as tf.Tensor2D);
}

const config = (bias: LoraBias, extra: Partial<ConstructorParameters<typeof LoraConfig>[0]> = {}) =>
  new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['fc1', 'fc2'], bias, ...extra });

/** Shifts every trainable bias, as training would. */
function shiftBiases(peft: PeftModel, by = 0.25) {
  for (const v of peft.model.trainableWeights.filter((w) => w.originalName.endsWith('/bias'))) {
    const shifted = tf.add(v.read(), by);
    v.write(shifted);
    shifted.dispose();
  }
}

const trainableBiases = (peft: PeftModel) =>
  peft.model.trainableWeights
    .map((w) => w.originalName)
    .filter((n) => n.endsWith('/bias'))
    .sort();

describeEachBackend('LoRA bias: "all" and "loraOnly"', () => {
  it('"all" trains every bias of the model, "loraOnly" those of the wrapped layers; a new adapter is a no-op', async () => {
    for (const [bias, expected, extra] of [
      ['all', ['fc1/bias', 'fc2/bias', 'head/bias'], 12 + 8 + 3],
      ['loraOnly', ['fc1/bias', 'fc2/bias'], 12 + 8],
      ['none', [], 0],
    ] as const) {
      const base = makeMlp();
      const x = inputs();
      const before = base.predict(x) as tf.Tensor;
      const peft = getPeftModel(base, config(bias));
      expect(trainableBiases(peft)).toEqual([...expected]);
      expect(peft.getNbTrainableParameters().trainableParams).toBe(2 * (6 + 12) + 2 * (12 + 8) + extra);
      const after = peft.model.predict(x) as tf.Tensor;
      await expectTensorsClose(after, before, 1e-6);
      tf.dispose([x, before, after]);
      peft.unload();
      // unload restores the trainable flags: a plain model again.
      expect(base.trainableWeights.length).toBe(6);
      base.dispose();
    }
  });

  it('training changes the biases in place; disabled gives the base weights bit for bit (outputs ≤ 1e-6); unload gives every weight back', async () => {
    const base = makeMlp();
    const baseWeights = await snapshotWeights(base);
    const x = inputs(8);
    const baseOut = base.predict(x) as tf.Tensor;
    const tensorsBefore = tf.memory().numTensors;
    const peft = getPeftModel(base, config('all', { initLoraWeights: false }));
    const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.slice(x, [0, 0], [8, 3]), 1), 3));
    peft.model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    await peft.model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0 });
    peft.model.optimizer.dispose();
    const afterTraining = await snapshotWeights(base);
    const headBias = (snap: typeof baseWeights) => snap.find((w) => w.name.startsWith('head/bias'))!.bytes;
    expect(Array.from(headBias(afterTraining))).not.toEqual(Array.from(headBias(baseWeights)));
    // The kernels are never written.
    expectWeightsBitIdentical(
      baseWeights.filter((w) => w.name.includes('kernel')),
      afterTraining.filter((w) => w.name.includes('kernel')),
    );
    const disabled = await peft.withAdapterDisabled(async () => {
      const out = peft.model.predict(x) as tf.Tensor;
      expectWeightsBitIdentical(baseWeights, await snapshotWeights(base));
      return out;
    });
    // The weights are the base's bit for bit; the wrapped layers compute through frozenDense, whose
    // fused ops may round differently from tfjs's Dense on some backends (wasm: 1e-7).
    await expectTensorsClose(disabled, baseOut, 1e-6);
    peft.unload();
    expectWeightsBitIdentical(baseWeights, await snapshotWeights(base));
    tf.dispose([y, disabled]);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    tf.dispose([x, baseOut]);
    base.dispose();
  });

  it('merged = unmerged, and 100 merge/unmerge cycles leave every weight bit-identical', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, config('all', { initLoraWeights: false }));
    shiftBiases(peft);
    const x = inputs();
    const unmerged = peft.model.predict(x) as tf.Tensor;
    const adapted = await snapshotWeights(base);
    await peft.mergeAdapter();
    const merged = peft.model.predict(x) as tf.Tensor;
    await expectTensorsClose(merged, unmerged, 1e-5);
    peft.unmergeAdapter();
    const tensors = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      await peft.mergeAdapter();
      peft.unmergeAdapter();
    }
    expect(tf.memory().numTensors).toBe(tensors);
    expectWeightsBitIdentical(adapted, await snapshotWeights(base));
    tf.dispose([x, unmerged, merged]);
    peft.unload();
    base.dispose();
  });

  it('gradients of A, B and the biases match central finite differences', async () => {
    // Smooth activations only (finite differences across a relu kink are meaningless): fc1 is
    // wrapped (its bias as base_layer.bias), head's bias trains through a LoraBiasLayer.
    const input = tfl.input({ shape: [6] });
    const hidden = tfl.layers
      .dense({ name: 'fc1', units: 5, activation: 'tanh', biasInitializer: 'glorotUniform' })
      .apply(input) as tfl.SymbolicTensor;
    const output = tfl.layers.dense({ name: 'head', units: 2 }).apply(hidden) as tfl.SymbolicTensor;
    const base = tfl.model({ inputs: input, outputs: output });
    const peft = getPeftModel(base, config('all', { targetModules: ['fc1'], initLoraWeights: false }));
    const x = inputs(3);
    expect(peft.trainableVariables.length).toBe(2 + 2);
    const loss = () => tf.tidy(() => tf.sum(tf.square(peft.model.predict(x) as tf.Tensor)) as tf.Scalar);
    await checkVariableGradients(loss, peft.trainableVariables, { epsilon: 1e-2, tolerance: 1e-2 });
    x.dispose();
    peft.unload();
    base.dispose();
  });

  it('saves the biases under PEFT keys and reloads them; an inactive bias adapter leaves the base biases', async () => {
    const base = makeMlp();
    const baseWeights = await snapshotWeights(base);
    const x = inputs();
    const baseOut = base.predict(x) as tf.Tensor;
    const peft = getPeftModel(base, config('all', { initLoraWeights: false }));
    shiftBiases(peft);
    const trained = peft.model.predict(x) as tf.Tensor;
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    expect([...file.tensors.keys()].sort()).toEqual([
      'base_model.model.fc1.base_layer.bias',
      'base_model.model.fc1.lora_A.weight',
      'base_model.model.fc1.lora_B.weight',
      'base_model.model.fc2.base_layer.bias',
      'base_model.model.fc2.lora_A.weight',
      'base_model.model.fc2.lora_B.weight',
      'base_model.model.head.bias',
    ]);
    const json = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(json.bias).toBe('all');
    // RegExp targets are saved as the modules LoRA wraps, not the bias-only ones (PEFT would wrap head).
    const regexp = getPeftModel(makeMlp(), config('all', { targetModules: [/^fc\d$/] }));
    const regexpStore = new MemoryAdapterStore();
    await regexp.saveAdapter(regexpStore);
    const regexpJson = JSON.parse(new TextDecoder().decode(regexpStore.files.get('adapter_config.json')));
    expect(regexpJson.target_modules).toEqual(['fc1', 'fc2']);
    regexp.unload().dispose();

    // A second adapter without biases: while it alone is active the biases are the base ones.
    peft.addAdapter('plain', config('none'));
    peft.setAdapter('plain');
    const plain = peft.model.predict(x) as tf.Tensor;
    await expectTensorsClose(plain, baseOut, 1e-6);
    expectWeightsBitIdentical(baseWeights, await snapshotWeights(base));
    peft.setAdapter('default');
    const back = peft.model.predict(x) as tf.Tensor;
    await expectTensorsClose(back, trained, 0);
    // One bias adapter per model, as in PEFT.
    expect(() => peft.addAdapter('second', config('loraOnly'))).toThrow(PeftConfigError);
    try {
      peft.addAdapter('second', config('loraOnly'));
    } catch (e) {
      expect((e as PeftConfigError).field).toBe('bias');
      expect((e as Error).message).toContain('"default"');
    }
    peft.unload();
    expectWeightsBitIdentical(baseWeights, await snapshotWeights(base));

    const reloaded = await PeftModel.fromPretrained(base, store);
    const out = reloaded.model.predict(x) as tf.Tensor;
    await expectTensorsClose(out, trained, 1e-6);
    reloaded.unload();
    expectWeightsBitIdentical(baseWeights, await snapshotWeights(base));
    tf.dispose([x, baseOut, trained, plain, back, out]);
    base.dispose();
  });

  it('a bias adapter added after others trains the biases of their LoRA layers too; addWeightedAdapter combines only LoRA', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, config('none', { initLoraWeights: false }), 'plain');
    peft.addAdapter('biased', config('all', { targetModules: ['fc1'], initLoraWeights: false }));
    const fc2 = peft.peftLayers().find((l) => l.name === 'fc2') as LoraDense;
    expect(fc2.adapterNames()).toEqual(['plain', 'biased']);
    expect(fc2.hasLoraAdapter('biased')).toBe(false);
    peft.setAdapter('biased');
    expect(trainableBiases(peft)).toEqual(['fc1/bias', 'fc2/bias', 'head/bias']);
    await peft.addWeightedAdapter(['plain', 'biased'], [1, 1], 'mix', 'cat');
    const expected = tf.tidy(() => fc2.deltaWeight('plain'));
    const mixed = tf.tidy(() => fc2.deltaWeight('mix'));
    await expectTensorsClose(mixed, expected, 1e-6);
    tf.dispose([expected, mixed]);
    peft.unload();
    base.dispose();
  });

  it('a failed load (a bias key missing or the wrong shape) leaves every weight bit-identical', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, config('all', { initLoraWeights: false }));
    shiftBiases(peft);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    peft.unload();
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    const baseWeights = await snapshotWeights(base);
    const tensors = tf.memory().numTensors;
    for (const [, edit] of [
      [
        'missing',
        (m: Map<string, { shape: number[]; data: Float32Array }>) => m.delete('base_model.model.head.bias'),
      ],
      [
        'wrong shape',
        (m: Map<string, { shape: number[]; data: Float32Array }>) =>
          m.set('base_model.model.head.bias', { shape: [4], data: new Float32Array(4) }),
      ],
    ] as const) {
      const edited = new Map([...file.tensors].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
      edit(edited);
      const bad = new MemoryAdapterStore();
      bad.files.set('adapter_config.json', store.files.get('adapter_config.json')!);
      bad.files.set('adapter_model.safetensors', serializeSafetensors(edited));
      await expect(PeftModel.fromPretrained(base, bad)).rejects.toThrow(AdapterMismatchError);
      expectWeightsBitIdentical(baseWeights, await snapshotWeights(base));
      expect(tf.memory().numTensors).toBe(tensors);
      expect(base.trainableWeights.length).toBe(6);
    }
    base.dispose();
  });

  it('config: PEFT\'s "lora_only" on disk, fan_in_fan_out accepted and written back', () => {
    const json = config('loraOnly', { fanInFanOut: true }).toJson();
    expect(json.bias).toBe('lora_only');
    expect(json.fan_in_fan_out).toBe(true);
    const back = LoraConfig.fromJson({ ...json, peft_type: 'LORA' });
    expect(back.bias).toBe('loraOnly');
    expect(back.fanInFanOut).toBe(true);
    expect(LoraConfig.fromJson({ peft_type: 'LORA', target_modules: ['fc1'], bias: 'all' }).bias).toBe('all');
    expect(() => LoraConfig.fromJson({ peft_type: 'LORA', target_modules: ['fc1'], bias: 'some' })).toThrow(
      PeftConfigError,
    );
    expect(() => config('lora_only' as LoraBias)).toThrow(PeftConfigError);
  });
});

// tfjs-node returns typed arrays from Node's realm, which tfjs's io code rejects inside jest's sandbox
// (as in lora-dense.test.ts); model.save itself works with tfjs-node outside jest.
describeEachBackend(
  'LoRA bias in saved models',
  () => {
    it('an adapted model saved with model.save() loads again with its trained biases', async () => {
      const base = makeMlp();
      const peft = getPeftModel(base, config('all', { initLoraWeights: false }));
      shiftBiases(peft);
      const x = inputs();
      const expected = peft.model.predict(x) as tf.Tensor;
      let artifacts: tf.io.ModelArtifacts | null = null;
      await peft.model.save(
        tf.io.withSaveHandler(async (a) => {
          artifacts = a;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
      const out = loaded.predict(x) as tf.Tensor;
      await expectTensorsClose(out, expected, 1e-6);
      tf.dispose([x, expected, out]);
      loaded.dispose();
      peft.unload();
      base.dispose();
    });
  },
  { only: ['cpu', 'wasm', 'webgpu', 'webgl'] },
);
