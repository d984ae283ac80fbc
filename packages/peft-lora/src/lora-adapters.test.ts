import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, MemoryAdapterStore, PeftModel, PeftConfigError } from '@tfjs-peft/core';
import {
  checkVariableGradients,
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraDense, singularValueDecomposition } from './index';

/** One linear Dense layer (plus a tanh one for DoRA), so adapter effects add up exactly. */
function makeModel(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'proj',
        units: 5,
        inputShape: [4],
        kernelInitializer: tfl.initializers.glorotNormal({ seed: 3 }),
      }),
      tfl.layers.dense({
        name: 'out',
        units: 3,
        activation: 'tanh',
        kernelInitializer: tfl.initializers.glorotNormal({ seed: 4 }),
      }),
    ],
  });
}

const x = () => tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 12, 1, 'float32'), [3, 4])));
const predict = (m: tfl.LayersModel, input: tf.Tensor) => m.predict(input) as tf.Tensor;
const random = (r: number, extra: Partial<ConstructorParameters<typeof LoraConfig>[0]> = {}) =>
  new LoraConfig({ r, loraAlpha: 2 * r, targetModules: ['proj'], initLoraWeights: false, ...extra });
const proj = (peft: PeftModel) => peft.model.getLayer('proj') as LoraDense;

async function maxAbs(t: tf.Tensor): Promise<number> {
  const m = tf.tidy(() => tf.max(tf.abs(t)));
  const value = (await m.data())[0];
  tf.dispose([m, t]);
  return value;
}

describeEachBackend('LoRA: many adapters on one base model', () => {
  it('two active adapters give the sum of their deltas; switching reallocates no base weight', async () => {
    const base = makeModel();
    const peft = getPeftModel(base, random(2));
    peft.addAdapter('second', random(3));
    const layer = proj(peft);
    const [first, second] = [layer.deltaWeight('default'), layer.deltaWeight('second')];
    const bytes = tf.memory().numBytes;
    peft.setAdapter(['default', 'second']);
    expect(tf.memory().numBytes).toBe(bytes);
    expect(peft.activeAdapters).toEqual(['default', 'second']);
    // Merging both must equal running both: the merged kernel is W + ΔW_1 + ΔW_2.
    const input = x();
    const both = predict(peft.model, input);
    const kernelVariable = (base.getLayer('proj') as unknown as { kernel: tfl.LayerVariable }).kernel;
    const expected = tf.tidy(() => tf.add(tf.add(kernelVariable.read(), first), second));
    await peft.mergeAdapter();
    const merged = predict(peft.model, input);
    await expectTensorsClose(merged, both, 1e-5);
    await expectTensorsClose(kernelVariable.read(), expected, 1e-6);
    peft.unmergeAdapter();
    tf.dispose([first, second, input, both, merged, expected]);
    peft.unload();
    base.dispose();
  });

  it('only active adapters train; setAdapter switches which', async () => {
    const base = makeModel();
    const peft = getPeftModel(base, random(2));
    peft.addAdapter('other', random(2));
    expect(peft.trainableVariables.map((v) => v.name).every((n) => n.includes('default'))).toBe(true);
    peft.setAdapter('other');
    expect(peft.trainableVariables.map((v) => v.name).every((n) => n.includes('other'))).toBe(true);
    peft.unload();
    base.dispose();
  });

  it('withAdapterDisabled gives the base outputs and cannot leave the model disabled', async () => {
    const base = makeModel();
    const input = x();
    const baseOut = predict(base, input);
    const peft = getPeftModel(base, random(2));
    const adapted = predict(peft.model, input);
    const disabled = peft.withAdapterDisabled(() => predict(peft.model, input));
    await expectTensorsClose(disabled, baseOut, 0);
    expect(() =>
      peft.withAdapterDisabled(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    await expect(
      peft.withAdapterDisabled(async () => Promise.reject(new Error('async boom'))),
    ).rejects.toThrow('async boom');
    const after = predict(peft.model, input);
    await expectTensorsClose(after, adapted, 0);
    tf.dispose([input, baseOut, adapted, disabled, after]);
    peft.unload();
    base.dispose();
  });

  it('deleteAdapter frees its variables and falls back to the remaining adapter', async () => {
    const base = makeModel();
    const peft = getPeftModel(base, random(2));
    const before = tf.memory().numTensors;
    peft.addAdapter('other', random(4));
    peft.setAdapter('other');
    peft.deleteAdapter('other');
    expect(tf.memory().numTensors).toBe(before);
    expect(peft.activeAdapters).toEqual(['default']);
    expect(() => peft.setAdapter('other')).toThrow(/other.*does not exist/);
    peft.unload();
    base.dispose();
  });

  it('saves every adapter, non-default ones in subfolders, and loads them back', async () => {
    const base = makeModel();
    const peft = getPeftModel(base, random(2));
    peft.addAdapter('other', random(3));
    const input = x();
    const outputs: Record<string, tf.Tensor> = {};
    for (const name of ['default', 'other']) {
      peft.setAdapter(name);
      outputs[name] = predict(peft.model, input);
    }
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    expect([...store.files.keys()].sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'other/adapter_config.json',
      'other/adapter_model.safetensors',
    ]);
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(base, store);
    await reloaded.loadAdapter(store, 'other', { subfolder: 'other' });
    for (const name of ['default', 'other']) {
      reloaded.setAdapter(name);
      const out = predict(reloaded.model, input);
      await expectTensorsClose(out, outputs[name], 1e-6);
      out.dispose();
    }
    tf.dispose([input, ...Object.values(outputs)]);
    reloaded.unload();
    base.dispose();
  });
});

describeEachBackend('LoRA: addWeightedAdapter', () => {
  async function setup() {
    const base = makeModel();
    const peft = getPeftModel(base, random(2));
    peft.addAdapter('b', random(2, { loraAlpha: 3 }));
    peft.addAdapter('c', random(3));
    return { base, peft, layer: proj(peft) };
  }

  it("'cat' is exactly Σ w·ΔW, with rank Σ r", async () => {
    const { base, peft, layer } = await setup();
    await peft.addWeightedAdapter(['default', 'c'], [0.7, -1.5], 'mix', 'cat');
    expect(layer.adapterSettings('mix')).toMatchObject({ r: 5, loraAlpha: 5, scale: 1 });
    const expected = tf.tidy(() =>
      tf.add(tf.mul(layer.deltaWeight('default'), 0.7), tf.mul(layer.deltaWeight('c'), -1.5)),
    );
    const mix = layer.deltaWeight('mix');
    await expectTensorsClose(mix, expected, 1e-5);
    tf.dispose([expected, mix]);
    peft.unload();
    base.dispose();
  });

  it("'linear' follows PEFT's definition: √(w·s)-weighted sums of A and of B", async () => {
    const { base, peft, layer } = await setup();
    await peft.addWeightedAdapter(['default', 'b'], [0.5, 2], 'mix', 'linear');
    const [a1, b1] = layer.adapterVariables('default').map((v) => v.read());
    const [a2, b2] = layer.adapterVariables('b').map((v) => v.read());
    const f1 = Math.sqrt(0.5 * layer.adapterSettings('default').scale);
    const f2 = Math.sqrt(2 * layer.adapterSettings('b').scale);
    const [a, b] = layer.adapterVariables('mix').map((v) => v.read());
    const expectedA = tf.tidy(() => tf.add(tf.mul(a1, f1), tf.mul(a2, f2)));
    const expectedB = tf.tidy(() => tf.add(tf.mul(b1, f1), tf.mul(b2, f2)));
    await expectTensorsClose(a, expectedA, 1e-6);
    await expectTensorsClose(b, expectedB, 1e-6);
    await expect(peft.addWeightedAdapter(['default', 'c'], [1, 1], 'bad', 'linear')).rejects.toThrow(
      PeftConfigError,
    );
    tf.dispose([expectedA, expectedB]);
    peft.unload();
    base.dispose();
  });

  it("'svd' reproduces Σ w·ΔW at full rank, and is its best rank-k approximation below", async () => {
    const { base, peft, layer } = await setup();
    await peft.addWeightedAdapter(['default', 'b', 'c'], [1, 0.5, -0.25], 'full', 'svd', { svdRank: 4 });
    await peft.addWeightedAdapter(['default', 'b', 'c'], [1, 0.5, -0.25], 'low', 'svd', { svdRank: 2 });
    const sum = tf.tidy(() =>
      tf.addN([
        layer.deltaWeight('default'),
        tf.mul(layer.deltaWeight('b'), 0.5),
        tf.mul(layer.deltaWeight('c'), -0.25),
      ]),
    );
    const full = layer.deltaWeight('full');
    // [4, 5] has rank ≤ 4, so rank 4 is exact.
    await expectTensorsClose(full, sum, 1e-5);
    const { s } = singularValueDecomposition(await sum.data(), 4, 5);
    const low = layer.deltaWeight('low');
    const residual = await maxAbs(tf.tidy(() => tf.sqrt(tf.sum(tf.square(tf.sub(sum, low))))));
    // Eckart–Young: the Frobenius error of the best rank-2 approximation is √(σ₃² + σ₄²).
    expect(residual).toBeCloseTo(Math.hypot(s[2], s[3]), 4);
    tf.dispose([sum, full, low]);
    peft.unload();
    base.dispose();
  });
});

describeEachBackend('DoRA on Dense layers', () => {
  it('a new DoRA adapter is a no-op; trained, merged equals unmerged; unmerge is bit-exact', async () => {
    const base = makeModel();
    const original = await snapshotWeights(base);
    const input = x();
    const baseOut = predict(base, input);
    const fresh = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['proj', 'out'], useDora: true }));
    const freshOut = predict(fresh.model, input);
    await expectTensorsClose(freshOut, baseOut, 1e-6);
    fresh.unload();

    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, targetModules: ['proj', 'out'], useDora: true, initLoraWeights: false }),
    );
    // Move the magnitudes away from the norms, as training would.
    for (const layerName of ['proj', 'out']) {
      const magnitude = (peft.model.getLayer(layerName) as LoraDense).adapterVariables('default')[2];
      const scaled = tf.tidy(() =>
        tf.mul(magnitude.read(), tf.linspace(0.5, 1.5, magnitude.shape[0] as number)),
      );
      magnitude.write(scaled);
      scaled.dispose();
    }
    const unmerged = predict(peft.model, input);
    await peft.mergeAdapter();
    const merged = predict(peft.model, input);
    await expectTensorsClose(merged, unmerged, 1e-5);
    peft.unmergeAdapter();
    expectWeightsBitIdentical(original, await snapshotWeights(base));

    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const config = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(config.use_dora).toBe(true);
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(base, store);
    const out = predict(reloaded.model, input);
    await expectTensorsClose(out, unmerged, 1e-6);
    tf.dispose([input, baseOut, freshOut, unmerged, merged, out]);
    reloaded.unload();
    base.dispose();
  });

  it('gradients match autodiff of the plain formula with the norm held constant, and finite differences for m', async () => {
    const base = makeModel();
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, targetModules: ['proj'], useDora: true, initLoraWeights: false }),
    );
    const input = x();
    const layer = proj(peft);
    const [a, b, m] = layer.adapterVariables('default');
    const { scale } = layer.adapterSettings('default');
    const dense = base.getLayer('proj') as unknown as { kernel: tfl.LayerVariable; bias: tfl.LayerVariable };
    const outLayer = base.getLayer('out');
    const loss = () => tf.tidy(() => tf.sum(tf.square(predict(peft.model, input))) as tf.Scalar);
    const { value, grads } = tf.variableGrads(loss, [a.read(), b.read(), m.read()] as tf.Variable[]);
    value.dispose();
    // The paper's detachment: n = ‖W + s·A·B‖ is a constant in the backward pass.
    const norm = tf.tidy(() =>
      tf.sqrt(
        tf.sum(tf.square(tf.add(dense.kernel.read(), tf.mul(tf.matMul(a.read(), b.read()), scale))), 0),
      ),
    );
    const expected = tf.tidy(() =>
      tf.grads((av: tf.Tensor, bv: tf.Tensor, mv: tf.Tensor) => {
        const adapted = tf.add(
          tf.matMul(input, dense.kernel.read()),
          tf.mul(tf.matMul(tf.matMul(input, av), bv), scale),
        );
        const h = tf.add(tf.mul(adapted, tf.div(mv, norm)), dense.bias.read());
        return tf.sum(tf.square(outLayer.apply(h) as tf.Tensor)) as tf.Scalar;
      })([a.read(), b.read(), m.read()]),
    );
    await expectTensorsClose(grads[(a.read() as tf.Variable).name], expected[0], 1e-5);
    await expectTensorsClose(grads[(b.read() as tf.Variable).name], expected[1], 1e-5);
    await expectTensorsClose(grads[(m.read() as tf.Variable).name], expected[2], 1e-5);
    // The magnitude does not enter the norm, so its gradient also matches finite differences.
    await checkVariableGradients(loss, [m.read() as tf.Variable], { epsilon: 1e-2, tolerance: 1e-2 });
    tf.dispose([input, norm, ...expected, ...Object.values(grads)]);
    peft.unload();
    base.dispose();
  });
});

describe('singularValueDecomposition', () => {
  it('reconstructs the matrix with orthonormal factors and sorted singular values', () => {
    for (const [rows, cols] of [
      [5, 3],
      [3, 5],
      [6, 6],
    ]) {
      const m = Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) + (i % 3));
      const { u, s, v, k } = singularValueDecomposition(m, rows, cols);
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          let sum = 0;
          for (let r = 0; r < k; r++) sum += u[i * k + r] * s[r] * v[j * k + r];
          expect(sum).toBeCloseTo(m[i * cols + j], 10);
        }
      }
      for (let a = 0; a < k; a++) {
        for (let b = 0; b < k; b++) {
          let dotV = 0;
          for (let i = 0; i < cols; i++) dotV += v[i * k + a] * v[i * k + b];
          expect(dotV).toBeCloseTo(a === b ? 1 : 0, 10);
        }
      }
      for (let r = 1; r < k; r++) expect(s[r]).toBeLessThanOrEqual(s[r - 1]);
    }
  });
});
