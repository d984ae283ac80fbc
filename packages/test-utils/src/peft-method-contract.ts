// The checks every PEFT method must pass, written once (as Hugging Face PEFT's test matrix does):
// each method package calls describePeftMethodContract with its own config and a small model, and
// the same assertions run on every backend. test-utils imports no method and not peft-core: the
// package under test passes the functions that attach and reload its adapter.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend } from './describe-each-backend';
import { expectTensorsClose } from './expect-tensors-close';
import { expectWeightsBitIdentical, snapshotWeights } from './snapshot-weights';

/** The part of a PeftModel the contract uses. */
export interface ContractPeftModel {
  readonly model: tfl.LayersModel;
  readonly trainableVariables: tf.Variable[];
  saveAdapter(store: never): Promise<void>;
  unload(): tfl.LayersModel;
}

export interface PeftMethodContractOptions<P extends ContractPeftModel, S> {
  /** e.g. 'LoRA'. */
  method: string;
  /** A fresh, small base model (the contract disposes it). Default: makeContractMlp. */
  makeBase?(): tfl.LayersModel;
  /** The model's input batch (created inside the test, disposed by it). Default: makeContractInputs. */
  makeInputs?(): tf.Tensor | tf.Tensor[];
  /** getPeftModel(base, <a config of this method>). */
  attach(base: tfl.LayersModel): P;
  /** A fresh in-memory adapter store (e.g. new MemoryAdapterStore()). */
  createStore(): S;
  /** PeftModel.fromPretrained(base, store) or the method's own loader. */
  reload(base: tfl.LayersModel, store: S): Promise<P>;
  /** Whether a freshly attached adapter leaves the output unchanged (true for every method with an identity init). */
  identityAtInit: boolean;
  /** Save/load through a store (false for methods whose adapters are saved another way). */
  saveLoad?: boolean;
}

/**
 * The contract's default base: Dense fc1 (5 → 8, relu) → fc2 (→ 6, tanh) → head (→ 3), seeded kernels
 * and non-zero biases (so bias methods start from real values), the same on every call.
 */
export function makeContractMlp(): tfl.LayersModel {
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'fc1',
        units: 8,
        activation: 'relu',
        inputShape: [5],
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
        biasInitializer: tfl.initializers.constant({ value: 0.1 }),
      }),
      tfl.layers.dense({
        name: 'fc2',
        units: 6,
        activation: 'tanh',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
        biasInitializer: tfl.initializers.constant({ value: -0.1 }),
      }),
      tfl.layers.dense({
        name: 'head',
        units: 3,
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
      }),
    ],
  });
}

/** A [4, 5] batch for makeContractMlp. */
export function makeContractInputs(): tf.Tensor {
  return tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 20, 1, 'float32'), [4, 5])));
}

const predict = (model: tfl.LayersModel, inputs: tf.Tensor | tf.Tensor[]) =>
  model.predict(inputs) as tf.Tensor;

export function describePeftMethodContract<P extends ContractPeftModel, S>(
  options: PeftMethodContractOptions<P, S>,
): void {
  const makeBase = options.makeBase ?? makeContractMlp;
  const makeInputs = options.makeInputs ?? makeContractInputs;
  describeEachBackend(`${options.method}: the PEFT method contract`, () => {
    if (options.identityAtInit) {
      it('a freshly applied adapter leaves the output unchanged (≤ 1e-6)', async () => {
        const base = makeBase();
        const x = makeInputs();
        const before = predict(base, x);
        const peft = options.attach(base);
        const after = predict(peft.model, x);
        await expectTensorsClose(after, before, 1e-6);
        tf.dispose([x, before, after]);
        peft.unload();
        base.dispose();
      });
    }

    it('only adapter variables train; every base weight stays bit-identical; unload frees the adapter', async () => {
      const base = makeBase();
      const original = await snapshotWeights(base);
      const tensorsBefore = tf.memory().numTensors;
      const peft = options.attach(base);
      const trainable = peft.trainableVariables;
      expect(trainable.length).toBeGreaterThan(0);
      const baseIds = new Set(base.weights.map((w) => w.read().id));
      expect(trainable.filter((v) => baseIds.has(v.id))).toEqual([]);
      const adapterBefore = await snapshotWeights(trainable);
      const x = makeInputs();
      const optimizer = tf.train.adam(0.05);
      for (let step = 0; step < 3; step++) {
        const cost = optimizer.minimize(
          () => tf.mean(tf.square(tf.sub(predict(peft.model, x), 1))) as tf.Scalar,
          true,
          trainable,
        );
        cost?.dispose();
      }
      const adapterAfter = await snapshotWeights(trainable);
      expect(adapterAfter.some((w, i) => w.bytes.some((b, j) => b !== adapterBefore[i].bytes[j]))).toBe(true);
      expectWeightsBitIdentical(original, await snapshotWeights(base));
      optimizer.dispose();
      tf.dispose(x);
      peft.unload();
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      base.dispose();
    });

    if (options.saveLoad ?? true) {
      it('save → load on another copy of the base reproduces the outputs (≤ 1e-6)', async () => {
        const base = makeBase();
        const peft = options.attach(base);
        // Move the adapter off its initial values so the check means something.
        const x = makeInputs();
        const optimizer = tf.train.sgd(0.1);
        optimizer.minimize(
          () => tf.mean(tf.square(tf.sub(predict(peft.model, x), 1))) as tf.Scalar,
          false,
          peft.trainableVariables,
        );
        optimizer.dispose();
        const saved = predict(peft.model, x);
        const store = options.createStore();
        await peft.saveAdapter(store as never);
        peft.unload();
        const other = makeBase();
        other.setWeights(base.getWeights());
        const reloaded = await options.reload(other, store);
        const out = predict(reloaded.model, x);
        await expectTensorsClose(out, saved, 1e-6);
        tf.dispose([x, saved, out]);
        reloaded.unload();
        other.dispose();
        base.dispose();
      });
    }
  });
}
