import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  getPeftModel,
  parseSafetensors,
  PeftModel,
  MemoryAdapterStore,
  TargetNotFoundError,
  UnsupportedLayerError,
} from '@tfjs-peft/core';
import {
  checkVariableGradients,
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
  bytesEqual,
} from '@tfjs-peft/test-utils';
import {
  adapterParams,
  cnnInputs,
  disposeAll,
  makeCnn,
  makeMlp,
  maxAbsDifference,
  mlpInputs,
  MLP_BASE_PARAMS,
  predict,
} from './__tests__/support/models';
import {
  AdapterNotMergeableError,
  BottleneckAdapter,
  BottleneckConfig,
  BottleneckSizeError,
  setAdapterComposition,
  type BottleneckNonLinearity,
} from './index';

function adapterLayers(model: tfl.LayersModel): BottleneckAdapter[] {
  return model.layers.filter((l): l is BottleneckAdapter => l instanceof BottleneckAdapter);
}

/** An independent reference: h + s·up(act(down(LN?(h)))), from the variables' values. */
function referenceAdapter(layer: BottleneckAdapter, name: string, h: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const settings = layer.adapterSettings(name);
    const [down, downBias, up, upBias, ...rest] = layer.adapterVariables(name).map((v) => v.read());
    let z = h;
    if (settings.layerNorm === 'before') {
      const mean = tf.mean(h, -1, true);
      const variance = tf.mean(tf.square(tf.sub(h, mean)), -1, true);
      z = tf.add(tf.mul(tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, 1e-5))), rest[0]), rest[1]);
    }
    const pre = tf.add(tf.matMul(z, down), downBias);
    const act = {
      relu: tf.relu(pre),
      tanh: tf.tanh(pre),
      swish: tf.mul(pre, tf.sigmoid(pre)),
      gelu: tf.mul(tf.mul(pre, 0.5), tf.add(1, tf.erf(tf.mul(pre, Math.SQRT1_2)))),
    }[settings.nonLinearity];
    const scale = settings.scaling === 'learned' ? rest[rest.length - 1] : tf.scalar(settings.scaling);
    return tf.add(h, tf.mul(tf.add(tf.matMul(act, up), upBias), scale));
  });
}

describeEachBackend('Bottleneck adapters after named layers (MLP, CNN)', () => {
  it('a new adapter leaves the output unchanged, for every option', async () => {
    const base = makeMlp();
    const x = mlpInputs();
    const before = predict(base, x);
    const variants: Array<ConstructorParameters<typeof BottleneckConfig>[0]> = [
      { placement: { after: ['fc1', 'fc2'] }, reductionFactor: 2 },
      {
        placement: { after: 'fc1' },
        reductionFactor: 4,
        nonLinearity: 'gelu',
        layerNorm: 'before',
        scaling: 'learned',
      },
      { placement: { after: /^fc\d$/ }, reductionFactor: 3, nonLinearity: 'swish', scaling: 4 },
      { placement: { after: ['fc2'] }, nonLinearity: 'tanh', reductionFactor: 8 },
    ];
    for (const options of variants) {
      const peft = getPeftModel(base, new BottleneckConfig(options));
      const after = predict(peft.model, x);
      await expectTensorsClose(after, before, 1e-6);
      after.dispose();
      peft.unload();
    }
    tf.dispose([x, before]);
    base.dispose();
  });

  it('inserts one adapter after each named layer; counts equal the closed form', async () => {
    const base = makeMlp();
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: ['fc1', 'fc2'] }, reductionFactor: 2 }),
    );
    expect(
      adapterLayers(peft.model).map((l) => [l.name, l.width, l.adapterSettings('default').bottleneck]),
    ).toEqual([
      ['fc1/adapter', 10, 5],
      ['fc2/adapter', 8, 4],
    ]);
    // The graph: fc1 → fc1/adapter → fc2 → fc2/adapter → head.
    // The base layers are shared with the user's graph: their latest node is the one in peft.model.
    const inbound = (name: string) =>
      peft.model
        .getLayer(name)
        .inboundNodes.at(-1)!
        .inboundLayers.map((l) => l.name);
    expect(inbound('fc1/adapter')).toEqual(['fc1']);
    expect(inbound('fc2')).toEqual(['fc1/adapter']);
    expect(inbound('head')).toEqual(['fc2/adapter']);
    const trainable = adapterParams(10, 5) + adapterParams(8, 4);
    expect(trainable).toBe(115 + 76);
    expect(peft.getNbTrainableParameters()).toEqual({
      trainableParams: trainable,
      allParams: MLP_BASE_PARAMS + trainable,
      trainablePercent: (100 * trainable) / (MLP_BASE_PARAMS + trainable),
    });
    const lines: string[] = [];
    peft.printTrainableParameters((l) => lines.push(l));
    expect(lines).toEqual(['trainable params: 191 || all params: 376 || trainable%: 50.7979']);
    // Layer norm (2·width) and a learned scale (1) per adapter.
    peft.addAdapter(
      'ln',
      new BottleneckConfig({
        placement: { after: 'fc1' },
        reductionFactor: 5,
        layerNorm: 'after',
        scaling: 'learned',
      }),
    );
    peft.setAdapter('ln');
    expect(peft.getNbTrainableParameters().trainableParams).toBe(
      adapterParams(10, 2, { layerNorm: true, learnedScaling: true }),
    );
    expect(adapterParams(10, 2, { layerNorm: true, learnedScaling: true })).toBe(73);
    disposeAll(peft, base);
  });

  it('after the convolution blocks of a CNN, acting on the channel axis', async () => {
    const base = makeCnn();
    const x = cnnInputs();
    const before = predict(base, x);
    const baseParams = base.countParams();
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: ['conv1', 'conv2'] }, reductionFactor: 4 }),
    );
    expect(adapterLayers(peft.model).map((l) => [l.name, l.width])).toEqual([
      ['conv1/adapter', 8],
      ['conv2/adapter', 8],
    ]);
    expect(peft.getNbTrainableParameters()).toMatchObject({
      trainableParams: 2 * adapterParams(8, 2),
      allParams: baseParams + 2 * adapterParams(8, 2),
    });
    const same = predict(peft.model, x);
    await expectTensorsClose(same, before, 1e-6);
    // A random adapter changes each pixel's channels by the same rule: compare with the reference on [pixels, channels].
    peft.addAdapter(
      'r',
      new BottleneckConfig({ placement: { after: 'conv1' }, reductionFactor: 4, initWeights: 'random' }),
    );
    peft.setAdapter('r');
    const layer = peft.model.getLayer('conv1/adapter') as BottleneckAdapter;
    const conv1 = base.getLayer('conv1');
    const probe = tfl.model({
      inputs: peft.model.inputs,
      outputs: [
        conv1.getOutputAt(conv1.inboundNodes.length - 1) as tfl.SymbolicTensor,
        layer.output as tfl.SymbolicTensor,
      ],
    });
    const [h, adapted] = probe.predict(x) as tf.Tensor[];
    const expected = tf.tidy(() => tf.reshape(referenceAdapter(layer, 'r', tf.reshape(h, [-1, 8])), h.shape));
    await expectTensorsClose(adapted, expected, 1e-5);
    expect(await maxAbsDifference(adapted, h)).toBeGreaterThan(1e-3);
    tf.dispose([x, before, same, h, adapted, expected]);
    disposeAll(peft, base);
  });

  it('training with fit changes only the adapters; the base weights stay bit-identical', async () => {
    const base = makeMlp();
    const baseBefore = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new BottleneckConfig({
        placement: { after: ['fc1', 'fc2'] },
        reductionFactor: 2,
        layerNorm: 'before',
        scaling: 'learned',
      }),
    );
    const adapterBefore = await snapshotWeights(peft.trainableVariables);
    const x = mlpInputs(16);
    const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.slice(x, [0, 0], [16, 3]), 1), 3));
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred);
    peft.model.compile({ optimizer: tf.train.adam(0.01), loss });
    const history = await peft.model.fit(x, y, { epochs: 20, batchSize: 8, verbose: 0, shuffle: false });
    expect(history.history.loss[19]).toBeLessThan(history.history.loss[0] as number);
    expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
    const adapterAfter = await snapshotWeights(peft.trainableVariables);
    // down, down bias, up, up bias, LN γ, LN β, scale — per adapter.
    expect(adapterAfter).toHaveLength(14);
    const changed = adapterAfter.filter((w, i) => !bytesEqual(w.bytes, adapterBefore[i].bytes));
    // Every weight but the down-projection bias of fc2's adapter… all of them learn once up is non-zero.
    expect(changed.length).toBeGreaterThanOrEqual(12);
    peft.model.optimizer.dispose();
    tf.dispose([x, y]);
    disposeAll(peft, base);
  });

  it('several named adapters: setAdapter switches, stack runs them in the order given, average averages', async () => {
    const base = tfl.sequential({
      layers: [
        tfl.layers.dense({
          name: 'fc',
          units: 8,
          inputShape: [5],
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }),
        }),
      ],
    });
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 15, 1, 'float32'), [3, 5])));
    const h = predict(base, x);
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: 'fc' }, reductionFactor: 2, initWeights: 'random' }),
    );
    peft.addAdapter(
      'b',
      new BottleneckConfig({
        placement: { after: 'fc' },
        reductionFactor: 4,
        nonLinearity: 'tanh',
        scaling: 0.5,
        initWeights: 'random',
      }),
    );
    const layer = peft.model.getLayer('fc/adapter') as BottleneckAdapter;
    // One layer holds both adapters, each with its own weights.
    expect(adapterLayers(peft.model)).toHaveLength(1);
    expect(layer.adapterNames()).toEqual(['default', 'b']);
    const fa = (t: tf.Tensor) => referenceAdapter(layer, 'default', t);
    const fb = (t: tf.Tensor) => referenceAdapter(layer, 'b', t);
    const check = async (expected: tf.Tensor) => {
      const out = predict(peft.model, x);
      await expectTensorsClose(out, expected, 1e-5);
      tf.dispose([out, expected]);
    };
    await check(fa(h));
    peft.setAdapter('b');
    expect(peft.getNbTrainableParameters().trainableParams).toBe(adapterParams(8, 2));
    await check(fb(h));
    peft.setAdapter(['default', 'b']);
    await check(tf.tidy(() => fb(fa(h))));
    peft.setAdapter(['b', 'default']);
    await check(tf.tidy(() => fa(fb(h))));
    expect(peft.getNbTrainableParameters().trainableParams).toBe(adapterParams(8, 4) + adapterParams(8, 2));
    setAdapterComposition(peft, 'average');
    await check(tf.tidy(() => tf.div(tf.add(fa(h), fb(h)), 2)));
    setAdapterComposition(peft, 'stack');
    // Disabled: the base model's output, exactly.
    const disabled = peft.withAdapterDisabled(() => predict(peft.model, x));
    await expectTensorsClose(disabled, h, 0);
    disabled.dispose();
    // Deleting one adapter frees its variables; the other keeps working.
    const tensors = tf.memory().numTensors;
    peft.deleteAdapter('default');
    expect(tf.memory().numTensors).toBe(tensors - 4);
    await check(fb(h));
    tf.dispose([x, h]);
    disposeAll(peft, base);
  });

  it('an adapter with a different placement gets its own layers; deleting it removes them', async () => {
    const base = makeMlp();
    const x = mlpInputs();
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: 'fc1' }, initWeights: 'random', reductionFactor: 2 }),
    );
    const first = predict(peft.model, x);
    peft.addAdapter(
      'second',
      new BottleneckConfig({ placement: { after: ['fc1', 'fc2'] }, reductionFactor: 2 }),
    );
    expect(adapterLayers(peft.model).map((l) => [l.name, l.adapterNames()])).toEqual([
      ['fc1/adapter', ['default', 'second']],
      ['fc2/adapter', ['second']],
    ]);
    peft.deleteAdapter('second');
    expect(adapterLayers(peft.model).map((l) => l.name)).toEqual(['fc1/adapter']);
    const again = predict(peft.model, x);
    await expectTensorsClose(again, first, 0);
    tf.dispose([x, first, again]);
    disposeAll(peft, base);
  });

  it('gradients of the adapter weights match central finite differences', async () => {
    for (const nonLinearity of ['tanh', 'gelu', 'swish'] as BottleneckNonLinearity[]) {
      const base = tfl.sequential({
        layers: [
          tfl.layers.dense({
            name: 'fc',
            units: 4,
            inputShape: [3],
            activation: 'tanh',
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
          }),
          tfl.layers.dense({
            name: 'head',
            units: 2,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
          }),
        ],
      });
      const peft = getPeftModel(
        base,
        new BottleneckConfig({
          placement: { after: 'fc' },
          reductionFactor: 2,
          nonLinearity,
          layerNorm: 'before',
          scaling: 'learned',
          initWeights: 'random',
        }),
      );
      const x = tf.tensor2d([
        [0.3, -0.7, 0.9],
        [-0.2, 0.5, 0.1],
      ]);
      const loss = () => tf.tidy(() => tf.sum(tf.square(predict(peft.model, x))) as tf.Scalar);
      const variables = peft.trainableVariables;
      expect(variables).toHaveLength(7);
      const { checked } = await checkVariableGradients(loss, variables, {
        epsilon: 5e-3,
        tolerance: 1e-2,
      }).catch((error: Error) => {
        throw new Error(`${nonLinearity}: ${error.message}`);
      });
      // down 4·2 + 2, up 2·4 + 4, γ 4, β 4, scale 1.
      expect(checked).toBe(31);
      x.dispose();
      disposeAll(peft, base);
    }
  });

  it('frozen layers before the first adapter get no backward pass at all', async () => {
    const base = makeMlp();
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: 'fc2' }, reductionFactor: 2 }),
    );
    const x = mlpInputs(4);
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(predict(peft.model, x)) as tf.Scalar,
        peft.trainableVariables,
      );
      tf.dispose([value, ...Object.values(grads)]);
    });
    // fc1's kernel [6, 10] and fc2's [10, 8]: no product yields a gradient of either shape.
    const products = profile.kernels
      .filter((k) => k.name === 'BatchMatMul' || k.name === '_FusedMatMul')
      .map((k) => String(k.outputShapes[0]).replace(/^1,/, ''));
    expect(products).not.toContain('6,10');
    expect(products).not.toContain('10,8');
    x.dispose();
    disposeAll(peft, base);
  });

  it('frozen Dense layers after an adapter pass dx back but compute no kernel gradient', async () => {
    const base = makeMlp();
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: 'fc1' }, reductionFactor: 2 }),
    );
    const x = mlpInputs(4);
    const profile = await tf.profile(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.sum(predict(peft.model, x)) as tf.Scalar,
        peft.trainableVariables,
      );
      tf.dispose([value, ...Object.values(grads)]);
    });
    const products = profile.kernels.filter((k) => k.name === 'BatchMatMul' || k.name === '_FusedMatMul');
    // fc2 [10, 8] and head [8, 3] are frozen and downstream of the adapter: the backward pass goes
    // through them (dx: [4, 8] and [4, 10]) and must not produce their kernel gradients. tfjs 4.22's
    // stock Dense fails this for linear layers (the head here, every Dense of the transformer): it
    // runs fused matMul, whose gradient computes dx, dW and db together — measured before core's
    // frozen path: BatchMatMul(1,4,8 ; 1,4,3)→[1,8,3]. Core now routes frozen Dense layers through
    // frozenDense while a PeftModel holds them.
    const frozenKernelGradients = products
      .filter((k) => ['10,8', '8,3'].includes(String(k.outputShapes[0]).replace(/^1,/, '')))
      .map((k) => `${k.name}(${k.inputShapes.join(' ; ')})→[${k.outputShapes[0]}]`);
    expect(frozenKernelGradients).toEqual([]);
    const dx = products.map((k) => String(k.outputShapes[0]).replace(/^1,/, ''));
    expect(dx).toEqual(expect.arrayContaining(['4,8', '4,10']));
    // The adapter's own weight gradients are computed: down [10, 5] and up [5, 10].
    expect(dx).toEqual(expect.arrayContaining(['10,5', '5,10']));
    x.dispose();
    disposeAll(peft, base);
  });

  it('save → load reproduces the outputs; PEFT file layout with PyTorch-layout keys', async () => {
    const base = makeMlp();
    const peft = getPeftModel(
      base,
      new BottleneckConfig({
        placement: { after: ['fc1', 'fc2'] },
        reductionFactor: 2,
        layerNorm: 'before',
        scaling: 'learned',
        initWeights: 'random',
      }),
    );
    peft.addAdapter(
      'other',
      new BottleneckConfig({
        placement: { after: /fc2/ },
        reductionFactor: 4,
        nonLinearity: 'gelu',
        initWeights: 'random',
      }),
    );
    const x = mlpInputs();
    const saved = predict(peft.model, x);
    peft.setAdapter('other');
    const savedOther = predict(peft.model, x);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    expect([...store.files.keys()].sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'other/adapter_config.json',
      'other/adapter_model.safetensors',
    ]);
    const config = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(config).toMatchObject({
      peft_type: 'BOTTLENECK',
      placement: 'after',
      target_modules: ['fc1', 'fc2'],
      reduction_factor: 2,
      non_linearity: 'relu',
      scaling: 'learned',
      layer_norm: 'before',
      init_weights: 'random',
    });
    // A RegExp target is saved as the module paths it matched.
    expect(
      JSON.parse(new TextDecoder().decode(store.files.get('other/adapter_config.json'))).target_modules,
    ).toEqual(['fc2']);
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    expect(file.metadata.format).toBe('pt');
    expect(Object.fromEntries([...file.tensors].map(([k, v]) => [k, v.shape]))).toEqual({
      'base_model.model.fc1.adapter_down.weight': [5, 10],
      'base_model.model.fc1.adapter_down.bias': [5],
      'base_model.model.fc1.adapter_up.weight': [10, 5],
      'base_model.model.fc1.adapter_up.bias': [10],
      'base_model.model.fc1.adapter_norm_before.weight': [10],
      'base_model.model.fc1.adapter_norm_before.bias': [10],
      'base_model.model.fc1.scaling': [1],
      'base_model.model.fc2.adapter_down.weight': [4, 8],
      'base_model.model.fc2.adapter_down.bias': [4],
      'base_model.model.fc2.adapter_up.weight': [8, 4],
      'base_model.model.fc2.adapter_up.bias': [8],
      'base_model.model.fc2.adapter_norm_before.weight': [8],
      'base_model.model.fc2.adapter_norm_before.bias': [8],
      'base_model.model.fc2.scaling': [1],
    });
    // PyTorch layout: adapter_down.weight is the transpose of the tfjs kernel.
    const down = (peft.model.getLayer('fc1/adapter') as BottleneckAdapter).adapterVariables('default')[0];
    const stored = file.tensors.get('base_model.model.fc1.adapter_down.weight')!;
    const transposed = tf.tidy(() => tf.transpose(down.read()));
    const storedTensor = tf.tensor(stored.data, stored.shape);
    await expectTensorsClose(transposed, storedTensor, 0);
    peft.unload();

    const reloaded = await PeftModel.fromPretrained(base, store);
    expect(reloaded.getNbTrainableParameters().trainableParams).toBe(0);
    await reloaded.loadAdapter(store, 'other', { subfolder: 'other', isTrainable: true });
    const out = predict(reloaded.model, x);
    await expectTensorsClose(out, saved, 1e-6);
    reloaded.setAdapter('other');
    expect(reloaded.getNbTrainableParameters().trainableParams).toBe(adapterParams(8, 2));
    const outOther = predict(reloaded.model, x);
    await expectTensorsClose(outOther, savedOther, 1e-6);
    tf.dispose([x, saved, savedOther, out, outOther, transposed, storedTensor]);
    disposeAll(reloaded, base);
  });

  it('modulesToSave trains a copy of the head beside the adapter, saved and reloaded with it', async () => {
    const base = makeMlp();
    const baseBefore = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: 'fc2' }, reductionFactor: 2, modulesToSave: ['head'] }),
    );
    expect(peft.getNbTrainableParameters().trainableParams).toBe(adapterParams(8, 4) + 8 * 3 + 3);
    const x = mlpInputs(8);
    const y = tf.tidy(() => tf.oneHot(tf.argMax(tf.slice(x, [0, 0], [8, 3]), 1), 3));
    peft.model.compile({
      optimizer: tf.train.adam(0.05),
      loss: (t: tf.Tensor, p: tf.Tensor) => tf.losses.softmaxCrossEntropy(t, p),
    });
    await peft.model.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0 });
    expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
    const trained = predict(peft.model, x);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const keys = [...parseSafetensors(store.files.get('adapter_model.safetensors')!).tensors.keys()].sort();
    expect(keys).toEqual([
      'base_model.model.fc2.adapter_down.bias',
      'base_model.model.fc2.adapter_down.weight',
      'base_model.model.fc2.adapter_up.bias',
      'base_model.model.fc2.adapter_up.weight',
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

  it('a config whose reduction_factor asks for wider bottlenecks than the file holds is refused before anything is allocated', async () => {
    const base = makeMlp();
    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: 'fc2' }, reductionFactor: 2 }),
    );
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    peft.unload();
    const config = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')!));
    // 8 / 1e-4 = 80,000 units: a few hundred bytes of config must not allocate megabytes.
    store.files.set(
      'adapter_config.json',
      new TextEncoder().encode(JSON.stringify({ ...config, reduction_factor: 1e-4 })),
    );
    const baseBefore = await snapshotWeights(base);
    const memory = tf.memory();
    await expect(PeftModel.fromPretrained(base, store)).rejects.toThrow(
      /fc2\.adapter_down\.weight.*reduction_factor 0\.0001 gives a bottleneck of 80000 units.*widest is 4/,
    );
    expect(tf.memory().numTensors).toBe(memory.numTensors);
    expect(tf.memory().numBytes).toBe(memory.numBytes);
    expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
    disposeAll(null, base);
  });

  it('attach → unload, 20 times, leaves no tensor and no variable behind', async () => {
    const base = makeMlp();
    const x = mlpInputs();
    const before = predict(base, x);
    const tensors = tf.memory().numTensors;
    const trainable = base.layers.map((l) => l.trainable);
    for (let i = 0; i < 20; i++) {
      const peft = getPeftModel(
        base,
        new BottleneckConfig({
          placement: { after: ['fc1', 'fc2'] },
          layerNorm: 'after',
          scaling: 'learned',
          reductionFactor: 2,
        }),
      );
      peft.addAdapter('b', new BottleneckConfig({ placement: { after: 'fc2' }, reductionFactor: 2 }));
      const out = predict(peft.model, x);
      out.dispose();
      expect(peft.unload()).toBe(base);
    }
    expect(tf.memory().numTensors).toBe(tensors);
    const after = predict(base, x);
    await expectTensorsClose(after, before, 0);
    expect(base.layers.map((l) => l.trainable)).toEqual(trainable);
    tf.dispose([x, before, after]);
    base.dispose();
  });

  it('typed errors: reduction factor larger than the width, a missing layer, a preset on a model without blocks, merging', async () => {
    const base = makeMlp();
    const tensors = tf.memory().numTensors;
    const trainable = base.layers.map((l) => l.trainable);
    const tooLarge = () =>
      getPeftModel(base, new BottleneckConfig({ placement: { after: ['fc1', 'fc2'] }, reductionFactor: 9 }));
    expect(tooLarge).toThrow(BottleneckSizeError);
    expect(tooLarge).toThrow(/reductionFactor.*9.*larger than the width 8 of layer "fc2"/);
    const missing = () => getPeftModel(base, new BottleneckConfig({ placement: { after: ['fc1', 'fc3'] } }));
    expect(missing).toThrow(TargetNotFoundError);
    expect(missing).toThrow(/"fc3".*closest first: fc1/);
    expect(() => getPeftModel(base, new BottleneckConfig({ placement: 'houlsby' }))).toThrow(
      TargetNotFoundError,
    );
    // Nothing was left behind by the failed attempts.
    expect(tf.memory().numTensors).toBe(tensors);
    expect(base.layers.map((l) => l.trainable)).toEqual(trainable);

    const peft = getPeftModel(
      base,
      new BottleneckConfig({ placement: { after: 'fc1' }, reductionFactor: 2 }),
    );
    const original = await snapshotWeights(base);
    await expect(peft.mergeAdapter()).rejects.toThrow(AdapterNotMergeableError);
    await expect(peft.mergeAdapter(undefined, { safeMerge: true })).rejects.toThrow(
      /fc1\/adapter.*not linear/,
    );
    await expect(peft.mergeAndUnload()).rejects.toThrow(AdapterNotMergeableError);
    expectWeightsBitIdentical(original, await snapshotWeights(base));
    // A failed addAdapter leaves the model as it was.
    expect(() =>
      peft.addAdapter(
        'wide',
        new BottleneckConfig({ placement: { after: ['fc1', 'head'] }, reductionFactor: 4 }),
      ),
    ).toThrow(/width 3 of layer "head"/);
    expect(Object.keys(peft.peftConfig)).toEqual(['default']);
    expect(adapterLayers(peft.model).map((l) => l.adapterNames())).toEqual([['default']]);
    disposeAll(peft, base);
  });

  it('a channelsFirst convolution is refused by name', async () => {
    const input = tfl.input({ shape: [3, 6, 6] });
    const conv = tfl.layers.conv2d({
      name: 'conv_cf',
      filters: 4,
      kernelSize: 3,
      dataFormat: 'channelsFirst',
    });
    const base = tfl.model({ inputs: input, outputs: conv.apply(input) as tfl.SymbolicTensor });
    expect(() =>
      getPeftModel(base, new BottleneckConfig({ placement: { after: 'conv_cf' }, reductionFactor: 2 })),
    ).toThrow(UnsupportedLayerError);
    expect(() =>
      getPeftModel(base, new BottleneckConfig({ placement: { after: 'conv_cf' }, reductionFactor: 2 })),
    ).toThrow(/conv_cf.*channelsFirst/);
    base.dispose();
  });
});

describeEachBackend(
  'Bottleneck adapter layers in saved models',
  () => {
    it('peft.model round-trips through model.save and tf.loadLayersModel', async () => {
      const base = makeMlp();
      const peft = getPeftModel(
        base,
        new BottleneckConfig({
          placement: { after: ['fc1', 'fc2'] },
          reductionFactor: 2,
          layerNorm: 'before',
          scaling: 'learned',
          initWeights: 'random',
        }),
      );
      const x = mlpInputs();
      const expected = predict(peft.model, x);
      let artifacts: tf.io.ModelArtifacts | undefined;
      await peft.model.save(
        tf.io.withSaveHandler(async (a) => {
          artifacts = a;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts!));
      expect(loaded.getLayer('fc1/adapter')).toBeInstanceOf(BottleneckAdapter);
      const out = predict(loaded, x);
      await expectTensorsClose(out, expected, 1e-6);
      tf.dispose([x, expected, out]);
      loaded.dispose();
      disposeAll(peft, base);
    });
  },
  // tfjs-node returns typed arrays from Node's realm, which tfjs's io code rejects inside jest (see peft-lora).
  { only: ['cpu', 'wasm', 'webgpu', 'webgl'] },
);
