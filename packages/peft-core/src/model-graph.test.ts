import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { collectLayers, outputLayerNames, rebuildModel } from './model-graph';

const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed });
const dense = (
  name: string,
  units: number,
  seed: number,
  extra: Partial<Parameters<typeof tfl.layers.dense>[0]> = {},
) => tfl.layers.dense({ name, units, kernelInitializer: seeded(seed), biasInitializer: 'ones', ...extra });

function sequentialModel(): tfl.LayersModel {
  return tfl.sequential({
    layers: [dense('s1', 4, 1, { inputShape: [3], activation: 'relu' }), dense('s2', 2, 2)],
  });
}

/** Two inputs, a Dense shared by both branches, a concatenate and a head. */
function branchedModel(): tfl.LayersModel {
  const a = tfl.input({ shape: [3], name: 'a' });
  const b = tfl.input({ shape: [3], name: 'b' });
  const shared = dense('shared', 4, 3, { activation: 'tanh' });
  const left = shared.apply(a) as tfl.SymbolicTensor;
  const right = shared.apply(b) as tfl.SymbolicTensor;
  const extra = dense('side', 2, 4).apply(b) as tfl.SymbolicTensor;
  const joined = tfl.layers.concatenate({ name: 'join' }).apply([left, right, extra]) as tfl.SymbolicTensor;
  const out = dense('head', 2, 5).apply(joined) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [a, b], outputs: out, name: 'branched' });
}

/** A Sequential used as a layer inside a functional model, between two Dense layers. */
function nestedModel(): tfl.LayersModel {
  const inner = tfl.sequential({
    name: 'inner',
    layers: [dense('inner_1', 4, 6, { inputShape: [4], activation: 'relu' }), dense('inner_2', 4, 7)],
  });
  const x = tfl.input({ shape: [3], name: 'x' });
  const h = dense('outer_in', 4, 8).apply(x) as tfl.SymbolicTensor;
  const y = inner.apply(h) as tfl.SymbolicTensor;
  const out = dense('outer_out', 2, 9).apply(y) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: out, name: 'outer' });
}

/** The same nested Sequential applied to two different tensors, then summed. */
function twiceNestedModel(): tfl.LayersModel {
  const inner = tfl.sequential({
    name: 'inner_twice',
    layers: [dense('inner_1', 4, 6, { inputShape: [4], activation: 'relu' }), dense('inner_2', 4, 7)],
  });
  const x = tfl.input({ shape: [4], name: 'x' });
  const h = dense('outer_in', 4, 8, { activation: 'tanh' }).apply(x) as tfl.SymbolicTensor;
  const y1 = inner.apply(x) as tfl.SymbolicTensor;
  const y2 = inner.apply(h) as tfl.SymbolicTensor;
  const out = tfl.layers.add({ name: 'add' }).apply([y1, y2]) as tfl.SymbolicTensor;
  return tfl.model({ inputs: x, outputs: out, name: 'outer_twice' });
}

function inputsFor(model: tfl.LayersModel): tf.Tensor[] {
  return model.inputs.map((input, i) =>
    tf.tidy(() => tf.sin(tf.add(tf.reshape(tf.range(0, 2 * input.shape[1]!), [2, input.shape[1]!]), i))),
  );
}

function run(model: tfl.LayersModel, x: tf.Tensor[]): tf.Tensor {
  return model.predict(x.length === 1 ? x[0] : x) as tf.Tensor;
}

/** Layers shared between models keep a reference count per call; free their variables directly. */
function disposeVariables(model: tfl.LayersModel): void {
  for (const layer of collectLayers(model)) for (const w of layer.weights) w.dispose();
}

const identity = () => undefined;

describeEachBackend('rebuildModel', () => {
  const cases: Array<[string, () => tfl.LayersModel, string[]]> = [
    ['a Sequential model', sequentialModel, ['s1', 's2']],
    [
      'a functional model with two inputs, a concatenate and a shared layer',
      branchedModel,
      ['shared', 'side', 'join', 'head'],
    ],
    [
      'a Sequential nested inside a functional model',
      nestedModel,
      ['outer_in', 'inner_1', 'inner_2', 'outer_out'],
    ],
    [
      'a nested Sequential called on two branches',
      twiceNestedModel,
      ['outer_in', 'inner_1', 'inner_2', 'add'],
    ],
  ];
  for (const [title, build, layerNames] of cases) {
    it(`the identity rebuild of ${title} computes the same outputs with the same variables`, async () => {
      const model = build();
      const x = inputsFor(model);
      const expected = run(model, x);
      const bytesBefore = tf.memory().numBytes;
      const tensorsBefore = tf.memory().numTensors;
      const rebuilt = rebuildModel(model, identity, 'rebuilt');
      expect(tf.memory().numBytes).toBe(bytesBefore);
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      expect(rebuilt.name).toBe('rebuilt');
      expect(rebuilt).not.toBe(model);
      // The flattened layers are the very same objects, and so are their variables.
      expect(
        collectLayers(rebuilt)
          .filter((l) => l.getClassName() !== 'InputLayer')
          .map((l) => l.name),
      ).toEqual(layerNames);
      const ids = (m: tfl.LayersModel) => collectLayers(m).flatMap((l) => l.weights.map((w) => w.id));
      expect(ids(rebuilt)).toEqual(ids(model));
      const inModel = collectLayers(model);
      // A Sequential's own layers omit its InputLayer; the rebuilt functional model lists it.
      expect(
        collectLayers(rebuilt).every((l) => inModel.includes(l) || l.getClassName() === 'InputLayer'),
      ).toBe(true);
      const actual = run(rebuilt, x);
      await expectTensorsClose(actual, expected, 0);
      tf.dispose([...x, expected, actual]);
      disposeVariables(model);
    });
  }

  it('calls the transform once per layer call (twice for a shared layer) and uses what it returns', async () => {
    const model = branchedModel();
    const calls: string[] = [];
    const zeros = tfl.layers.dense({
      name: 'side_zeros',
      units: 2,
      kernelInitializer: 'zeros',
      biasInitializer: 'zeros',
    });
    const rebuilt = rebuildModel(model, (layer, inputs) => {
      calls.push(layer.name);
      return layer.name === 'side' ? (zeros.apply(inputs) as tfl.SymbolicTensor) : undefined;
    });
    expect(calls.sort()).toEqual(['head', 'join', 'shared', 'shared', 'side']);
    expect(rebuilt.layers.map((l) => l.name)).toContain('side_zeros');
    expect(rebuilt.layers.map((l) => l.name)).not.toContain('side');
    const x = inputsFor(model);
    const original = run(model, x);
    const changed = run(rebuilt, x);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(original, changed))));
    expect((await diff.data())[0]).toBeGreaterThan(0);
    tf.dispose([...x, original, changed, diff]);
    disposeVariables(model);
    zeros.weights.forEach((w) => w.dispose());
  });

  it('refuses a model without inputs, naming it', () => {
    const unbuilt = tfl.sequential({ name: 'unbuilt' });
    expect(() => rebuildModel(unbuilt, identity)).toThrow(/"unbuilt" has no inputs yet/);
  });
});

describeEachBackend('collectLayers and outputLayerNames', () => {
  it('flatten nested models, list each layer once, and find the head inside a nested output', async () => {
    const model = nestedModel();
    expect(collectLayers(model).map((l) => l.getClassName())).toEqual([
      'InputLayer',
      'Dense',
      'Dense',
      'Dense',
      'Dense',
    ]);
    expect(outputLayerNames(model)).toEqual(new Set(['outer_out']));
    const shared = branchedModel();
    expect(collectLayers(shared).filter((l) => l.name === 'shared')).toHaveLength(1);
    const x = tfl.input({ shape: [3] });
    const inner = sequentialModel();
    const wrapper = tfl.model({ inputs: x, outputs: inner.apply(x) as tfl.SymbolicTensor });
    expect(outputLayerNames(wrapper)).toEqual(new Set(['s2']));
    disposeVariables(model);
    disposeVariables(shared);
    disposeVariables(wrapper);
  });
});
