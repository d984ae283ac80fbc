// nonFiniteLossGuard on a LoRA model whose learning rate blows the loss up: detected, training stopped
// (or fit rejects with NonFiniteLossError), the adapter restored bit-exactly to the last state whose
// loss was finite, the frozen base untouched. LoRA is imported from its sources by path (core must
// not depend on a method package).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  describeEachBackend,
  expectWeightsBitIdentical,
  snapshotWeights,
  type WeightSnapshot,
  bytesEqual,
} from '@tfjs-peft/test-utils';
import { LoraConfig } from '../../peft-lora/src/index';
import { PeftError } from './errors';
import { frozenTransposeCacheSize } from './frozen-dense';
import { getPeftModel } from './get-peft-model';
import { NonFiniteLossError, nonFiniteLossGuard } from './non-finite-guard';

function setup() {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  const base = tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'fc1',
        units: 8,
        activation: 'relu',
        inputShape: [4],
        kernelInitializer: init(1),
      }),
      tfl.layers.dense({ name: 'head', units: 2, kernelInitializer: init(2) }),
    ],
  });
  const peft = getPeftModel(
    base,
    new LoraConfig({ r: 2, targetModules: ['fc1', 'head'], initLoraWeights: 'gaussian' }),
  );
  const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 64 * 4), [64, 4])));
  const y = tf.tidy(() => tf.mul(tf.cos(tf.reshape(tf.range(0, 64 * 2), [64, 2])), 100));
  return { base, peft, x, y };
}

/** Records the adapter's weights after every batch's update, and the loss of that batch. */
function recorder(variables: () => tf.Variable[]) {
  const states = new Map<number, WeightSnapshot[]>();
  const losses: number[] = [];
  let index = 0;
  return {
    states,
    losses,
    callback: {
      onTrainBegin: async () => void states.set(-1, await snapshotWeights(variables())),
      onBatchEnd: async (_batch: number, logs?: { loss?: number }) => {
        losses.push(logs!.loss!);
        states.set(index++, await snapshotWeights(variables()));
      },
    },
  };
}

describeEachBackend('nonFiniteLossGuard', () => {
  for (const snapshotEvery of [1, 3]) {
    it(`a blown-up learning rate is detected; the adapter is restored bit-exactly (snapshot every ${snapshotEvery})`, async () => {
      const { base, peft, x, y } = setup();
      const baseBefore = await snapshotWeights(base);
      const optimizer = tf.train.sgd(2);
      peft.model.compile({ optimizer, loss: 'meanSquaredError' });
      const record = recorder(() => peft.trainableVariables);
      const restores: NonFiniteLossError[] = [];
      const guard = nonFiniteLossGuard(peft, { snapshotEvery, onRestore: (e) => restores.push(e) });
      const history = await peft.model.fit(x, y, {
        epochs: 3,
        batchSize: 4,
        shuffle: false,
        verbose: 0,
        callbacks: [record.callback, guard],
      });

      const firstBad = record.losses.findIndex((l) => !Number.isFinite(l));
      expect(firstBad).toBeGreaterThanOrEqual(2);
      // Training stopped at the bad batch (batch indices restart each epoch: count them).
      expect(record.losses).toHaveLength(firstBad + 1);
      expect(history.epoch.length).toBeLessThanOrEqual(Math.ceil((firstBad + 1) / 16));
      expect(restores).toHaveLength(1);
      expect(guard.restored).toBe(restores[0]);
      expect(guard.restored).toBeInstanceOf(PeftError);
      expect(Number.isFinite(guard.restored!.loss)).toBe(false);
      // The restore point: the latest snapshot (one every `snapshotEvery` batches) whose weights then
      // produced a finite loss, i.e. taken after batch b with b + 1 < firstBad.
      let expected = -1;
      for (let b = 0; b + 1 < firstBad; b++) if ((b + 1) % snapshotEvery === 0) expected = b;
      const restoredState = await snapshotWeights(peft.trainableVariables);
      expectWeightsBitIdentical(record.states.get(expected)!, restoredState);
      for (const w of restoredState)
        expect([...new Float32Array(w.bytes.buffer)].every(Number.isFinite)).toBe(true);
      expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
      // The model predicts finite values again.
      const out = peft.model.predict(x) as tf.Tensor;
      expect([...(await out.data())].every(Number.isFinite)).toBe(true);
      out.dispose();
      optimizer.dispose();
      tf.dispose([x, y]);
      peft.unload();
      base.dispose();
    });
  }

  it("onNonFinite: 'throw' makes fit reject with NonFiniteLossError after restoring; fit can run again", async () => {
    const { base, peft, x, y } = setup();
    const optimizer = tf.train.sgd(2);
    peft.model.compile({ optimizer, loss: 'meanSquaredError' });
    const before = await snapshotWeights(peft.trainableVariables);
    const guard = nonFiniteLossGuard(peft, { onNonFinite: 'throw' });
    const error = await peft.model
      .fit(x, y, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0, callbacks: [guard] })
      .then(
        () => null,
        (e) => e,
      );
    expect(error).toBeInstanceOf(NonFiniteLossError);
    expect((error as Error).message).toMatch(
      /Training loss is (NaN|-?Infinity) at epoch \d+, batch \d+; the adapter was restored/,
    );
    const restored = await snapshotWeights(peft.trainableVariables);
    for (const w of restored) expect([...new Float32Array(w.bytes.buffer)].every(Number.isFinite)).toBe(true);
    expect(restored.some((w, i) => !bytesEqual(w.bytes, before[i].bytes))).toBe(true);
    // fit() can run again (tfjs reset its training flag) from the restored adapter.
    const sane = tf.train.sgd(0);
    peft.model.compile({ optimizer: sane, loss: 'meanSquaredError' });
    const again = await peft.model.fit(x, y, {
      epochs: 1,
      batchSize: 4,
      shuffle: false,
      verbose: 0,
      callbacks: [nonFiniteLossGuard(peft)],
    });
    expect(again.history.loss).toHaveLength(1);
    optimizer.dispose();
    sane.dispose();
    tf.dispose([x, y]);
    peft.unload();
    base.dispose();
  });

  it('a healthy run is not touched and the guard frees its snapshots', async () => {
    const { base, peft, x, y } = setup();
    const optimizer = tf.train.sgd(1e-4);
    peft.model.compile({ optimizer, loss: 'meanSquaredError' });
    const tensorsBefore = tf.memory().numTensors;
    const guard = nonFiniteLossGuard(peft, { snapshotEvery: 2 });
    await peft.model.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, callbacks: [guard] });
    expect(guard.restored).toBeNull();
    expect(peft.model.stopTraining).toBe(false);
    // fit's own bookkeeping aside, the guard holds nothing after training. (On wasm the frozen
    // kernels' cached transposes, taken in the first step and held until unload, are not the guard's.)
    expect(tf.memory().numTensors - frozenTransposeCacheSize().kernels).toBe(tensorsBefore);
    optimizer.dispose();
    tf.dispose([x, y]);
    peft.unload();
    base.dispose();
  });

  it('refuses bad options with a typed error', () => {
    const fake = { trainableVariables: [], model: { stopTraining: false } };
    expect(() => nonFiniteLossGuard(fake, { onNonFinite: 'ignore' as 'stop' })).toThrow(PeftError);
    expect(() => nonFiniteLossGuard(fake, { snapshotEvery: 0 })).toThrow(
      /snapshotEvery must be a positive integer/,
    );
  });
});
