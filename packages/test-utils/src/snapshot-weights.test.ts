import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend } from './describe-each-backend';
import { expectWeightsBitIdentical, snapshotWeights } from './snapshot-weights';

describeEachBackend('snapshotWeights / expectWeightsBitIdentical', () => {
  it('passes for untouched weights and names the weight that changed by one ulp', async () => {
    const model = tfl.sequential({
      layers: [tfl.layers.dense({ units: 3, inputShape: [4], name: 'probe' })],
    });
    const before = await snapshotWeights(model);
    expect(before.map((w) => w.name)).toEqual([
      expect.stringMatching(/^probe\/kernel/),
      expect.stringMatching(/^probe\/bias/),
    ]);
    // Running the model must not change anything.
    tf.tidy(() => {
      model.predict(tf.ones([2, 4]));
    });
    expectWeightsBitIdentical(before, await snapshotWeights(model));

    // Nudge one bias element by the smallest float32 step.
    const bias = model.getWeights()[1];
    const values = Float32Array.from(await bias.data());
    const bits = new Uint32Array(values.buffer);
    bits[2] += 1;
    const nudged = tf.tensor1d(values);
    model.layers[0].setWeights([model.getWeights()[0], nudged]);
    nudged.dispose();
    expect(() => expectWeightsBitIdentical(before, [])).toThrow(/names\/order/);
    const after = await snapshotWeights(model);
    expect(() => expectWeightsBitIdentical(before, after)).toThrow(
      /weight probe\/bias(_\d+)? is not bit-identical: \d byte\(s\) differ, first at element 2/,
    );
    model.dispose();
  });

  it('accepts a plain list of variables', async () => {
    const initial = tf.tensor1d([1, 2, 3]);
    const v = tf.variable(initial, true, 'plain_var');
    initial.dispose();
    const snapshot = await snapshotWeights([v]);
    expect(snapshot[0].name).toBe('plain_var');
    const next = tf.add(v, 1e-3) as tf.Tensor1D;
    v.assign(next); // assign keeps its own reference: `next` must still be disposed
    next.dispose();
    expect(() => expectWeightsBitIdentical(snapshot, [])).toThrow();
    await expect(
      snapshotWeights([v]).then((after) => expectWeightsBitIdentical(snapshot, after)),
    ).rejects.toThrow(/plain_var/);
    v.dispose();
  });
});
