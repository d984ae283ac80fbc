import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  getPeftModel,
  PeftModel,
  MemoryAdapterStore,
  AdapterMismatchError,
  NonFiniteWeightError,
} from '@tfjs-peft/core';
import {
  checkVariableGradients,
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
  bytesEqual,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraDense } from './index';

/** A small MLP, Sequential or functional, with named layers. */
function makeMlp(
  kind: 'sequential' | 'functional' = 'sequential',
  seed = 1,
  hidden: 'relu' | 'tanh' = 'relu',
): tfl.LayersModel {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: seed * 10 + s });
  const biasInit = (s: number) => tfl.initializers.randomNormal({ stddev: 0.1, seed: seed * 10 + s + 5 });
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
      kernelInitializer: init(s),
      biasInitializer: biasInit(s),
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
  const out = dense('head', 3, 'linear', 3).apply(h2) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

function inputs(rows = 5): tf.Tensor2D {
  return tf.tidy(() => tf.sin(tf.reshape(tf.range(0, rows * 6, 1, 'float32'), [rows, 6])) as tf.Tensor2D);
}

function predict(model: tfl.LayersModel, x: tf.Tensor): tf.Tensor {
  return model.predict(x) as tf.Tensor;
}

function disposeAll(peft: PeftModel | null, base: tfl.LayersModel) {
  if (peft && peft.activeAdapters.length) peft.unload();
  base.dispose();
}

describeEachBackend('LoRA on Dense layers', () => {
  for (const kind of ['sequential', 'functional'] as const) {
    it(`a new adapter leaves the ${kind} model's output unchanged`, async () => {
      const base = makeMlp(kind);
      const x = inputs();
      const before = predict(base, x);
      const peft = getPeftModel(
        base,
        new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['fc1', /^fc2$/] }),
      );
      const after = predict(peft.model, x);
      await expectTensorsClose(after, before, 1e-6);
      expect(peft.model.layers.filter((l) => l instanceof LoraDense).map((l) => l.name)).toEqual([
        'fc1',
        'fc2',
      ]);
      tf.dispose([x, before, after]);
      disposeAll(peft, base);
    });
  }

  it('counts parameters as Hugging Face PEFT prints them', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'] }));
    const baseParams = 6 * 10 + 10 + 10 * 8 + 8 + 8 * 3 + 3;
    const loraParams = 2 * (6 + 10) + 2 * (10 + 8);
    expect(peft.getNbTrainableParameters()).toEqual({
      trainableParams: loraParams,
      allParams: baseParams + loraParams,
      trainablePercent: (100 * loraParams) / (baseParams + loraParams),
    });
    const lines: string[] = [];
    peft.printTrainableParameters((l) => lines.push(l));
    expect(lines).toEqual([`trainable params: 68 || all params: 253 || trainable%: 26.8775`]);
    expect(peft.trainableVariables).toHaveLength(4);
    disposeAll(peft, base);
  });

  it('training with fit changes only the adapter; the base weights stay bit-identical', async () => {
    const base = makeMlp('functional');
    const baseBefore = await snapshotWeights(base);
    const peft = getPeftModel(base, new LoraConfig({ r: 4, loraAlpha: 8, targetModules: 'all-dense' }));
    const loraBefore = await snapshotWeights(peft.trainableVariables);
    const x = inputs(16);
    // A learnable labelling: which of the first three input features is largest.
    const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.slice(x, [0, 0], [16, 3]), 1), 3));
    // The head outputs logits.
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred);
    peft.model.compile({ optimizer: tf.train.adam(0.01), loss });
    const history = await peft.model.fit(x, y, { epochs: 20, batchSize: 8, verbose: 0, shuffle: false });
    expect(history.history.loss[19]).toBeLessThan(history.history.loss[0] as number);
    expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
    const loraAfter = await snapshotWeights(peft.trainableVariables);
    // 'all-dense' skips the output head: fc1 and fc2 have A and B each.
    expect(loraAfter).toHaveLength(4);
    expect(loraAfter.some((w, i) => !bytesEqual(w.bytes, loraBefore[i].bytes))).toBe(true);
    peft.model.optimizer.dispose();
    tf.dispose([x, y]);
    disposeAll(peft, base);
  });

  it('merged equals unmerged; unmerge and unload restore the base weights bit-exactly, 100 times over', async () => {
    const base = makeMlp();
    const original = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 3, loraAlpha: 6, targetModules: ['fc1', 'fc2', 'head'], initLoraWeights: false }),
    );
    const x = inputs();
    const unmerged = predict(peft.model, x);
    const baseOut = predict(base, x);
    // initLoraWeights: false makes the adapter a real change.
    const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(unmerged, baseOut))));
    expect((await difference.data())[0]).toBeGreaterThan(1e-3);
    difference.dispose();
    await peft.mergeAdapter();
    const merged = predict(peft.model, x);
    await expectTensorsClose(merged, unmerged, 1e-5);
    peft.unmergeAdapter();
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    for (let i = 0; i < 100; i++) {
      await peft.mergeAdapter();
      peft.unmergeAdapter();
    }
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    await peft.mergeAdapter();
    const restored = peft.unload();
    expect(restored).toBe(base);
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    tf.dispose([x, unmerged, baseOut, merged]);
    base.dispose();
  });

  it('mergeAndUnload returns a plain model with the adapter folded in', async () => {
    const base = makeMlp('functional');
    const peft = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['fc2'], initLoraWeights: false }));
    const x = inputs();
    const adapted = predict(peft.model, x);
    const plain = await peft.mergeAndUnload();
    expect(plain.layers.some((l) => l instanceof LoraDense)).toBe(false);
    const out = predict(plain, x);
    await expectTensorsClose(out, adapted, 1e-5);
    tf.dispose([x, adapted, out]);
    plain.dispose();
  });

  it('safeMerge refuses non-finite deltas, names the layer, and leaves the weights as they were', async () => {
    const base = makeMlp();
    const original = await snapshotWeights(base);
    const peft = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'] }));
    const b = (peft.model.getLayer('fc2') as LoraDense).adapterVariables('default')[1];
    const nan = tf.fill(b.shape as number[], NaN);
    b.write(nan);
    nan.dispose();
    await expect(peft.mergeAdapter(undefined, { safeMerge: true })).rejects.toThrow(NonFiniteWeightError);
    await expect(peft.mergeAdapter(undefined, { safeMerge: true })).rejects.toThrow(/fc2/);
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    disposeAll(peft, base);
  });

  it('gradients of A and B (through frozen layers) match central finite differences', async () => {
    // tanh: smooth, so finite differences are meaningful everywhere.
    const base = makeMlp('sequential', 1, 'tanh');
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['fc1', 'fc2'], initLoraWeights: false }),
    );
    const x = inputs(3);
    const loss = () => tf.tidy(() => tf.sum(tf.square(predict(peft.model, x))) as tf.Scalar);
    await checkVariableGradients(loss, peft.trainableVariables, { epsilon: 1e-2, tolerance: 1e-2 });
    x.dispose();
    disposeAll(peft, base);
  });

  it('the frozen kernel gets no gradient: the backward pass runs no weight-gradient matMul', async () => {
    const base = makeMlp();
    const peft = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2', 'head'] }));
    const x = inputs(4);
    const vars = peft.trainableVariables;
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(predict(peft.model, x)) as tf.Scalar, vars);
      tf.dispose([value, ...Object.values(grads)]);
    });
    // A kernel gradient is a product whose output has the kernel's [in, out] shape.
    const kernelShapes = new Set(['6,10', '10,8', '8,3']);
    const weightGradients = profile.kernels.filter(
      (k) =>
        (k.name === 'BatchMatMul' || k.name === '_FusedMatMul') &&
        kernelShapes.has(String(k.outputShapes[0])),
    );
    expect(weightGradients).toEqual([]);
    x.dispose();
    disposeAll(peft, base);
  });

  it('save → load reproduces the outputs, in Hugging Face PEFT layout', async () => {
    const base = makeMlp('functional');
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 4, loraAlpha: 16, targetModules: ['fc1', 'fc2'], initLoraWeights: false }),
    );
    const x = inputs();
    const saved = predict(peft.model, x);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    expect([...store.files.keys()].sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const config = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(config).toMatchObject({
      peft_type: 'LORA',
      r: 4,
      lora_alpha: 16,
      target_modules: ['fc1', 'fc2'],
      bias: 'none',
    });
    const { parseSafetensors } = await import('@tfjs-peft/core');
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    expect(file.metadata.format).toBe('pt');
    expect(Object.fromEntries([...file.tensors].map(([k, v]) => [k, v.shape]))).toEqual({
      'base_model.model.fc1.lora_A.weight': [4, 6],
      'base_model.model.fc1.lora_B.weight': [10, 4],
      'base_model.model.fc2.lora_A.weight': [4, 10],
      'base_model.model.fc2.lora_B.weight': [8, 4],
    });
    peft.unload();

    const reloaded = await PeftModel.fromPretrained(base, store);
    expect(reloaded.getNbTrainableParameters().trainableParams).toBe(0);
    const out = predict(reloaded.model, x);
    await expectTensorsClose(out, saved, 1e-6);
    reloaded.unload();
    const trainable = await PeftModel.fromPretrained(base, store, { isTrainable: true });
    expect(trainable.getNbTrainableParameters().trainableParams).toBe(4 * 16 + 4 * 18);
    tf.dispose([x, saved, out]);
    disposeAll(trainable, base);
  });

  it('modulesToSave trains a copy of the head, saves it in PEFT keys, and reloads it', async () => {
    const base = makeMlp('functional');
    const baseBefore = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, targetModules: ['fc1'], modulesToSave: ['head'], initLoraWeights: false }),
    );
    // The head copy (3·8 + 3) trains beside LoRA's A and B.
    expect(peft.getNbTrainableParameters().trainableParams).toBe(2 * (6 + 10) + 27);
    const x = inputs(8);
    const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.slice(x, [0, 0], [8, 3]), 1), 3));
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred);
    peft.model.compile({ optimizer: tf.train.adam(0.05), loss });
    await peft.model.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0 });
    expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
    const trained = predict(peft.model, x);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const { parseSafetensors } = await import('@tfjs-peft/core');
    const keys = [...parseSafetensors(store.files.get('adapter_model.safetensors')!).tensors.keys()].sort();
    expect(keys).toEqual([
      'base_model.model.fc1.lora_A.weight',
      'base_model.model.fc1.lora_B.weight',
      'base_model.model.head.bias',
      'base_model.model.head.weight',
    ]);
    peft.model.optimizer.dispose();
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(base, store);
    const out = predict(reloaded.model, x);
    await expectTensorsClose(out, trained, 1e-6);
    tf.dispose([x, y, trained, out]);
    disposeAll(reloaded, base);
  });

  it('a load that does not fit the model fails with a typed error and leaves the model untouched', async () => {
    const base = makeMlp();
    const store = new MemoryAdapterStore();
    const source = getPeftModel(makeMlp(), new LoraConfig({ r: 4, targetModules: ['fc1'] }));
    await source.saveAdapter(store);
    source.unload();
    source.baseModel.dispose();
    // Same keys, wrong width: a model whose fc1 has 12 inputs.
    const wide = tfl.sequential({ layers: [tfl.layers.dense({ name: 'fc1', units: 10, inputShape: [12] })] });
    const before = await snapshotWeights(wide);
    await expect(PeftModel.fromPretrained(wide, store)).rejects.toThrow(AdapterMismatchError);
    await expect(PeftModel.fromPretrained(wide, store)).rejects.toThrow(
      /lora_A\.weight.*\[4, 6\].*\[4, 12\]/,
    );
    expectWeightsBitIdentical(before, await snapshotWeights(wide));
    expect(wide.trainableWeights).toHaveLength(2);
    wide.dispose();
    base.dispose();
  });
});

// tfjs-node returns typed arrays from Node's realm, which tfjs's io code (instanceof Float32Array) rejects
// inside jest's sandbox; model.save itself works with tfjs-node outside jest.
describeEachBackend(
  'LoRA layers in saved models',
  () => {
    it('peft.model round-trips through model.save and tf.loadLayersModel', async () => {
      const base = makeMlp();
      const peft = getPeftModel(
        base,
        new LoraConfig({ r: 2, targetModules: ['fc1'], initLoraWeights: false }),
      );
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
      expect(loaded.getLayer('fc1')).toBeInstanceOf(LoraDense);
      const out = predict(loaded, x);
      await expectTensorsClose(out, expected, 1e-6);
      tf.dispose([x, expected, out]);
      loaded.dispose();
      disposeAll(peft, base);
    });
  },
  { only: ['cpu', 'wasm', 'webgpu', 'webgl'] },
);

describeEachBackend('Frozen layers around adapters', () => {
  it('a frozen Dense layer that is not adapted computes no kernel gradient, and unload restores it', async () => {
    const base = makeMlp();
    const head = base.getLayer('head');
    // Only fc1 is adapted: fc2 and head are frozen plain Dense layers the gradient flows through.
    const peft = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['fc1'] }));
    const x = inputs(4);
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(predict(peft.model, x)) as tf.Scalar,
        peft.trainableVariables,
      );
      tf.dispose([value, ...Object.values(grads)]);
    });
    const kernelGradientShapes = new Set(['10,8', '8,3']);
    const weightGradients = profile.kernels.filter((k) =>
      kernelGradientShapes.has(String(k.outputShapes[0])),
    );
    expect(weightGradients.map((k) => k.name)).toEqual([]);
    expect(Object.prototype.hasOwnProperty.call(head, 'call')).toBe(true);
    peft.unload();
    expect(Object.prototype.hasOwnProperty.call(head, 'call')).toBe(false);
    x.dispose();
    base.dispose();
  });
});
