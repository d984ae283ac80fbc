// PeftMethod.fileKeys: a method whose files use other keys than `base_model.model.<module>.<suffix>`
// (PEFT's prompt-learning methods) maps them at the file boundary, in saveAdapter and loadAdapter.
// LoRA is imported from its sources by path (core must not depend on a method package) and
// re-registered with a key mapping for the duration of each test.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { LoraConfig } from '../../peft-lora/src/index';
import { MemoryAdapterStore } from './adapter-store';
import { AdapterMismatchError } from './errors';
import { getPeftModel } from './get-peft-model';
import { ADAPTER_WEIGHTS_FILE, PeftModel } from './peft-model';
import { getPeftMethod, registerPeftMethod, type PeftMethod } from './peft-method-registry';
import { parseSafetensors, serializeSafetensors } from './safetensors';

function makeBase(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'fc1',
        units: 5,
        inputShape: [4],
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
      }),
      tfl.layers.dense({ name: 'fc2', units: 3, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
}

const config = () => new LoraConfig({ r: 2, loraAlpha: 2, targetModules: ['fc1', 'fc2'], initLoraWeights: false });

// The file layout of this test: `fc1.A` for `base_model.model.fc1.lora_A.weight`.
const toFile = (key: string) =>
  key.replace(/^base_model\.model\.(.+)\.lora_([AB])\.weight$/, (_, module: string, ab: string) => `${module}.${ab}`);
const fromFile = (key: string) =>
  key.replace(/^([a-z0-9_]+)\.([AB])$/, (_, module: string, ab: string) => `base_model.model.${module}.lora_${ab}.weight`);

describeEachBackend('PeftMethod.fileKeys', () => {
  let original: PeftMethod;
  beforeEach(() => {
    original = getPeftMethod('LORA');
    registerPeftMethod({ ...original, fileKeys: { toFile, fromFile } });
  });
  afterEach(() => registerPeftMethod(original));

  it('saveAdapter writes the mapped keys; fromPretrained reads them (and peft-core’s own) and reproduces outputs', async () => {
    const x = tf.tensor2d([[0.1, -0.2, 0.3, 0.4]]);
    const peft = getPeftModel(makeBase(), config());
    const expected = peft.model.predict(x) as tf.Tensor;
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const file = parseSafetensors(store.files.get(ADAPTER_WEIGHTS_FILE)!, ADAPTER_WEIGHTS_FILE);
    expect([...file.tensors.keys()].sort()).toEqual(['fc1.A', 'fc1.B', 'fc2.A', 'fc2.B']);

    const loaded = await PeftModel.fromPretrained(makeBase(), store);
    const out = loaded.model.predict(x) as tf.Tensor;
    await expectTensorsClose(out, expected, 0);

    // A file in peft-core's layout still loads: fromFile leaves those keys as they are.
    const coreLayout = new MemoryAdapterStore();
    for (const [path, bytes] of store.files) coreLayout.files.set(path, bytes);
    const renamed = new Map([...file.tensors].map(([k, t]) => [fromFile(k), t] as const));
    coreLayout.files.set(ADAPTER_WEIGHTS_FILE, serializeSafetensors(renamed));
    const again = await PeftModel.fromPretrained(makeBase(), coreLayout);
    const out2 = again.model.predict(x) as tf.Tensor;
    await expectTensorsClose(out2, expected, 0);

    tf.dispose([x, expected, out, out2]);
    for (const p of [peft, loaded, again]) p.unload().dispose();
  });

  it('two file keys that map to one key are refused with AdapterMismatchError, the model untouched', async () => {
    const peft = getPeftModel(makeBase(), config());
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const file = parseSafetensors(store.files.get(ADAPTER_WEIGHTS_FILE)!, ADAPTER_WEIGHTS_FILE);
    const doubled = new Map(file.tensors);
    doubled.set('base_model.model.fc1.lora_A.weight', file.tensors.get('fc1.A')!);
    store.files.set(ADAPTER_WEIGHTS_FILE, serializeSafetensors(doubled));
    const base = makeBase();
    const tensors = tf.memory().numTensors;
    await expect(PeftModel.fromPretrained(base, store)).rejects.toThrow(AdapterMismatchError);
    await expect(PeftModel.fromPretrained(base, store)).rejects.toThrow(/both stand for/);
    expect(tf.memory().numTensors).toBe(tensors);
    expect(base.layers.map((l) => l.getClassName())).toEqual(['Dense', 'Dense']);
    peft.unload().dispose();
    base.dispose();
  });
});
