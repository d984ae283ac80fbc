import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  getPeftModel,
  PeftModel,
  MemoryAdapterStore,
  PeftConfigError,
  TargetNotFoundError,
  UnsupportedLayerError,
  parseSafetensors,
} from '@tfjs-peft/core';
import {
  checkVariableGradients,
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
  bytesEqual,
} from '@tfjs-peft/test-utils';
import { IA3Config, IA3Dense } from './index';

function makeMlp(
  kind: 'sequential' | 'functional' = 'sequential',
  hidden: 'relu' | 'tanh' = 'relu',
): tfl.LayersModel {
  const dense = (
    name: string,
    units: number,
    activation: 'relu' | 'tanh' | 'linear',
    s: number,
    inputShape?: number[],
  ) =>
    tfl.layers.dense({
      name,
      units,
      activation,
      kernelInitializer: tfl.initializers.glorotUniform({ seed: 10 + s }),
      biasInitializer: tfl.initializers.randomNormal({ stddev: 0.1, seed: 15 + s }),
      inputShape,
    });
  if (kind === 'sequential') {
    return tfl.sequential({
      layers: [dense('fc1', 10, hidden, 1, [6]), dense('fc2', 8, hidden, 2), dense('head', 3, 'linear', 3)],
    });
  }
  const input = tfl.input({ shape: [6] });
  const h1 = dense('fc1', 10, hidden, 1).apply(input) as tfl.SymbolicTensor;
  const h2 = dense('fc2', 8, hidden, 2).apply(h1) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: dense('head', 3, 'linear', 3).apply(h2) as tfl.SymbolicTensor });
}

const inputs = (rows = 5) =>
  tf.tidy(() => tf.sin(tf.reshape(tf.range(0, rows * 6, 1, 'float32'), [rows, 6])) as tf.Tensor2D);
const predict = (model: tfl.LayersModel, x: tf.Tensor) => model.predict(x) as tf.Tensor;

function release(peft: PeftModel | null, base: tfl.LayersModel) {
  if (peft && peft.activeAdapters.length) peft.unload();
  base.dispose();
}

/** Sets every trainable vector to 1 + 0.5·N(0, 1), as the PEFT fixture does, so the adapter is not a no-op. */
function randomise(peft: PeftModel, seed = 3) {
  peft.trainableVariables.forEach((v, i) => {
    const t = tf.tidy(() => tf.add(1, tf.randomNormal(v.shape, 0, 0.5, 'float32', seed + i)));
    v.assign(t);
    t.dispose();
  });
}

const config = (extra: Partial<ConstructorParameters<typeof IA3Config>[0]> = {}) =>
  new IA3Config({ targetModules: ['fc1', 'fc2'], feedforwardModules: ['fc2'], ...extra });

describeEachBackend('IA³ on Dense layers', () => {
  for (const kind of ['sequential', 'functional'] as const) {
    it(`a new adapter leaves the ${kind} model's output unchanged (≤ 1e-6)`, async () => {
      const base = makeMlp(kind);
      const x = inputs();
      const before = predict(base, x);
      const peft = getPeftModel(base, config({ targetModules: ['fc1', 'fc2', 'head'] }));
      expect(
        peft.peftLayers().map((l) => [l.name, (l as IA3Dense).adapterSettings('default').feedforward]),
      ).toEqual([
        ['fc1', false],
        ['fc2', true],
        ['head', false],
      ]);
      const after = predict(peft.model, x);
      await expectTensorsClose(after, before, 1e-6);
      tf.dispose([x, before, after]);
      release(peft, base);
    });
  }

  it('trainable parameters = the vector lengths ([out] for output scaling, [in] for feed-forward)', () => {
    const base = makeMlp();
    const peft = getPeftModel(base, config({ targetModules: ['fc1', 'fc2', 'head'] }));
    const baseParams = 6 * 10 + 10 + 10 * 8 + 8 + 8 * 3 + 3;
    // fc1: out 10; fc2 (feed-forward): in 10; head: out 3.
    const vectors = 10 + 10 + 3;
    expect(peft.getNbTrainableParameters()).toEqual({
      trainableParams: vectors,
      allParams: baseParams + vectors,
      trainablePercent: (100 * vectors) / (baseParams + vectors),
    });
    const lines: string[] = [];
    peft.printTrainableParameters((l) => lines.push(l));
    expect(lines).toEqual(['trainable params: 23 || all params: 208 || trainable%: 11.0577']);
    release(peft, base);
  });

  it('training with fit changes only the vectors; the base weights stay bit-identical', async () => {
    const base = makeMlp('functional');
    const original = await snapshotWeights(base);
    const peft = getPeftModel(base, config());
    const before = await snapshotWeights(peft.trainableVariables);
    const x = inputs(16);
    const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.slice(x, [0, 0], [16, 3]), 1), 3));
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred);
    peft.model.compile({ optimizer: tf.train.adam(0.05), loss });
    const history = await peft.model.fit(x, y, { epochs: 15, batchSize: 8, verbose: 0, shuffle: false });
    expect(history.history.loss[14]).toBeLessThan(history.history.loss[0] as number);
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    const after = await snapshotWeights(peft.trainableVariables);
    expect(after).toHaveLength(2);
    expect(after.every((w, i) => !bytesEqual(w.bytes, before[i].bytes))).toBe(true);
    peft.model.optimizer.dispose();
    tf.dispose([x, y]);
    release(peft, base);
  });

  it('the frozen kernels get no gradient: the backward pass runs no weight-gradient matMul', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, config({ targetModules: ['fc1', 'fc2', 'head'] }));
    const x = inputs(4);
    const vars = peft.trainableVariables;
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(predict(peft.model, x)) as tf.Scalar, vars);
      tf.dispose([value, ...Object.values(grads)]);
    });
    const kernelShapes = new Set(['6,10', '10,8', '8,3']);
    // A kernel gradient is any kernel whose output has a frozen kernel's [in, out] shape (the forward
    // pass runs tfjs's own fused matMul, whose outputs are activations, never kernel-shaped).
    const weightGradients = profile.kernels.filter((k) => kernelShapes.has(String(k.outputShapes[0])));
    expect(weightGradients.map((k) => k.name)).toEqual([]);
    x.dispose();
    release(peft, base);
  });

  it('vector gradients match central finite differences', async () => {
    const base = makeMlp('sequential', 'tanh');
    const peft = getPeftModel(base, config());
    randomise(peft);
    const x = inputs(3);
    const loss = () => tf.tidy(() => tf.sum(tf.square(predict(peft.model, x))) as tf.Scalar);
    await checkVariableGradients(loss, peft.trainableVariables, { epsilon: 5e-3, tolerance: 1e-2 });
    x.dispose();
    release(peft, base);
  });

  it('merged equals unmerged (≤ 1e-5); unmerge restores the base bit-exactly, 100 times over', async () => {
    const base = makeMlp();
    const original = await snapshotWeights(base);
    const peft = getPeftModel(base, config({ targetModules: ['fc1', 'fc2', 'head'] }));
    randomise(peft);
    const x = inputs();
    const baseOut = predict(base, x);
    const unmerged = predict(peft.model, x);
    const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(unmerged, baseOut))));
    expect((await difference.data())[0]).toBeGreaterThan(1e-3);
    await peft.mergeAdapter();
    const merged = predict(peft.model, x);
    await expectTensorsClose(merged, unmerged, 1e-5);
    const disabled = peft.withAdapterDisabled(() => predict(peft.model, x));
    await expectTensorsClose(disabled, baseOut, 1e-6);
    peft.unmergeAdapter();
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    for (let i = 0; i < 100; i++) {
      await peft.mergeAdapter();
      peft.unmergeAdapter();
    }
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    await peft.mergeAdapter();
    expect(peft.unload()).toBe(base);
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    tf.dispose([x, baseOut, unmerged, difference, merged, disabled]);
    base.dispose();
  });

  it('mergeAndUnload returns a plain model with the vectors folded into kernel and bias', async () => {
    const base = makeMlp('functional');
    const peft = getPeftModel(base, config());
    randomise(peft);
    const x = inputs();
    const adapted = predict(peft.model, x);
    const plain = await peft.mergeAndUnload();
    expect(plain.layers.some((l) => l instanceof IA3Dense)).toBe(false);
    const out = predict(plain, x);
    await expectTensorsClose(out, adapted, 1e-5);
    tf.dispose([x, adapted, out]);
    plain.dispose();
  });

  it('two adapters: switching, and both active multiply their vectors (as PEFT)', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, config());
    peft.addAdapter('other', config());
    randomise(peft, 7);
    peft.setAdapter('other');
    randomise(peft, 11);
    const x = inputs();
    const outOther = predict(peft.model, x);
    peft.setAdapter(['default', 'other']);
    const both = predict(peft.model, x);
    // Both active = one adapter whose vectors are the products.
    const layers = peft.peftLayers() as IA3Dense[];
    const products = layers.map((l) =>
      tf.tidy(() => tf.mul(l.adapterVariables('default')[0].read(), l.adapterVariables('other')[0].read())),
    );
    peft.addAdapter('product', config());
    layers.forEach((l, i) => l.adapterVariables('product')[0].write(products[i]));
    peft.setAdapter('product');
    const expected = predict(peft.model, x);
    await expectTensorsClose(both, expected, 1e-6);
    peft.setAdapter(['default', 'other']);
    await peft.mergeAdapter();
    const merged = predict(peft.model, x);
    await expectTensorsClose(merged, both, 1e-5);
    peft.unmergeAdapter();
    peft.deleteAdapter('other');
    expect(layers[0].adapterNames()).toEqual(['default', 'product']);
    tf.dispose([x, outOther, both, expected, merged, ...products]);
    release(peft, base);
  });

  it('save → load reproduces the outputs, keys and shapes as PEFT ([out, 1] and [1, in])', async () => {
    const base = makeMlp('functional');
    const peft = getPeftModel(base, config({ modulesToSave: ['head'] }));
    randomise(peft);
    const x = inputs();
    const saved = predict(peft.model, x);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const json = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(json).toMatchObject({
      peft_type: 'IA3',
      target_modules: ['fc1', 'fc2'],
      feedforward_modules: ['fc2'],
      init_ia3_weights: true,
      modules_to_save: ['head'],
    });
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    expect(file.metadata.format).toBe('pt');
    expect(Object.fromEntries([...file.tensors].map(([k, v]) => [k, v.shape]))).toEqual({
      'base_model.model.fc1.ia3_l': [10, 1],
      'base_model.model.fc2.ia3_l': [1, 10],
      'base_model.model.head.weight': [3, 8],
      'base_model.model.head.bias': [3],
    });
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(base, store);
    expect(reloaded.getNbTrainableParameters().trainableParams).toBe(0);
    const out = predict(reloaded.model, x);
    await expectTensorsClose(out, saved, 1e-6);
    reloaded.unload();
    const trainable = await PeftModel.fromPretrained(base, store, { isTrainable: true });
    expect(trainable.getNbTrainableParameters().trainableParams).toBe(10 + 10 + 27);
    tf.dispose([x, saved, out]);
    release(trainable, base);
  });

  it('a RegExp feedforwardModules is saved as a PEFT regex string that selects the same layers', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, new IA3Config({ targetModules: /^fc/, feedforwardModules: /2$/ }));
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const json = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(json.target_modules.sort()).toEqual(['fc1', 'fc2']);
    expect(json.feedforward_modules).toBe('.*(?:2$).*');
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(base, store);
    expect(
      reloaded.peftLayers().map((l) => [l.name, (l as IA3Dense).adapterSettings('default').feedforward]),
    ).toEqual([
      ['fc1', false],
      ['fc2', true],
    ]);
    release(reloaded, base);
  });

  describe('bad input gets a typed error that names what is wrong', () => {
    it('feedforwardModules not a subset of targetModules', () => {
      const base = makeMlp();
      const bad = new IA3Config({ targetModules: ['fc1'], feedforwardModules: ['fc2'] });
      expect(() => getPeftModel(base, bad)).toThrow(PeftConfigError);
      expect(() => getPeftModel(base, bad)).toThrow(/feedforwardModules.*subset of targetModules.*fc2/);
      expect(base.trainableWeights).toHaveLength(6);
      base.dispose();
    });

    it('unknown targets, unknown feed-forward names, unsupported layers, bad options', () => {
      const base = makeMlp();
      expect(() => getPeftModel(base, new IA3Config({ targetModules: ['fc3'] }))).toThrow(
        TargetNotFoundError,
      );
      expect(() => getPeftModel(base, new IA3Config({ targetModules: ['fc3'] }))).toThrow(/"fc3".*fc1/);
      expect(() => getPeftModel(base, config({ feedforwardModules: ['fc9'] }))).toThrow(TargetNotFoundError);
      expect(() => new IA3Config({ targetModules: [] })).toThrow(/targetModules/);
      expect(() => new IA3Config({ targetModules: ['fc1'], feedforwardModules: ['fc1', /x/] })).toThrow(
        /feedforwardModules/,
      );
      expect(() => new IA3Config({ targetModules: ['fc1'], initIa3Weights: 1 as never })).toThrow(
        /initIa3Weights/,
      );
      expect(() => new IA3Config({ targetModules: ['fc1'], feedForwardModules: ['fc1'] } as never)).toThrow(
        /not a field of IA3Config/,
      );
      expect(() =>
        IA3Config.fromJson({ peft_type: 'IA3', target_modules: ['fc1'], fan_in_fan_out: true }),
      ).toThrow(/fan_in_fan_out/);
      expect(base.trainableWeights).toHaveLength(6);
      base.dispose();
      const conv = tfl.sequential({
        layers: [tfl.layers.conv2d({ name: 'conv', filters: 2, kernelSize: 3, inputShape: [5, 5, 1] })],
      });
      expect(() => getPeftModel(conv, new IA3Config({ targetModules: ['conv'] }))).toThrow(
        UnsupportedLayerError,
      );
      conv.dispose();
    });
  });
});

describeEachBackend(
  'IA³ layers in saved models',
  () => {
    it('peft.model round-trips through model.save and tf.loadLayersModel', async () => {
      const base = makeMlp();
      const peft = getPeftModel(base, config());
      randomise(peft);
      const x = inputs();
      const expected = predict(peft.model, x);
      let artifacts: tf.io.ModelArtifacts | undefined;
      await peft.model.save(
        tf.io.withSaveHandler(async (a) => {
          artifacts = a;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
      expect(loaded.getLayer('fc2')).toBeInstanceOf(IA3Dense);
      const out = predict(loaded, x);
      await expectTensorsClose(out, expected, 1e-6);
      tf.dispose([x, expected, out]);
      loaded.dispose();
      release(peft, base);
    });
  },
  { only: ['cpu', 'wasm', 'webgpu', 'webgl'] },
);
