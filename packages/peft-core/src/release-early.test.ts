// releaseEarly(optimizer): model.fit and optimizer.minimize through variableGradsReleasingEarly give
// the same weights as the stock optimizer, with a lower tf.profile peak, no tensor left behind, and
// the optimizer object (class, config) unchanged; applying it twice changes nothing.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { PeftError } from './errors';
import { releaseEarly, releasesEarly } from './release-early';

/** A small MLP with fixed weights (every backend and both optimizers start from the same). */
function mlp(): tfl.LayersModel {
  const model = tfl.sequential({
    layers: [
      tfl.layers.dense({ inputShape: [12], units: 32, activation: 'relu' }),
      tfl.layers.dense({ units: 32, activation: 'tanh' }),
      tfl.layers.dense({ units: 3, activation: 'softmax' }),
    ],
  });
  const values = model
    .getWeights()
    .map((w, i) =>
      tf.tidy(() => tf.mul(tf.sin(tf.add(tf.reshape(tf.range(0, w.size, 1, 'float32'), w.shape), i)), 0.3)),
    );
  model.setWeights(values);
  tf.dispose(values);
  return model;
}

function data(): { xs: tf.Tensor; ys: tf.Tensor } {
  return tf.tidy(() => {
    const xs = tf.cos(tf.reshape(tf.range(0, 16 * 12, 1, 'float32'), [16, 12]));
    const ys = tf.oneHot(
      tf.tensor1d(
        Array.from({ length: 16 }, (_, i) => i % 3),
        'int32',
      ),
      3,
    );
    return { xs, ys: tf.cast(ys, 'float32') };
  });
}

describeEachBackend('releaseEarly: optimizer.minimize with early release', () => {
  it('model.fit gives the same weights as the stock optimizer, without leaking', async () => {
    const { xs, ys } = data();
    const stock = mlp();
    const ours = mlp();
    const stockOptimizer = tf.train.adam(0.01);
    const ourOptimizer = releaseEarly(tf.train.adam(0.01));
    stock.compile({ optimizer: stockOptimizer, loss: 'categoricalCrossentropy' });
    ours.compile({ optimizer: ourOptimizer, loss: 'categoricalCrossentropy' });
    const fitOptions = { batchSize: 8, shuffle: false, verbose: 0 } as const;
    await stock.fit(xs, ys, { ...fitOptions, epochs: 3 });
    // The first epoch creates Adam's moment slots (optimizer state, not a leak); count after it.
    await ours.fit(xs, ys, { ...fitOptions, epochs: 1 });
    const before = tf.memory().numTensors;
    const history = await ours.fit(xs, ys, { ...fitOptions, epochs: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(history.history.loss).toHaveLength(2);
    const stockWeights = stock.getWeights();
    const ourWeights = ours.getWeights();
    for (let i = 0; i < stockWeights.length; i++) {
      await expectTensorsClose(ourWeights[i], stockWeights[i], 1e-5);
    }
    // The weights moved: the test compares trained models, not two untouched ones.
    const untouched = mlp();
    const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(ourWeights[0], untouched.getWeights()[0]))));
    expect((await moved.data())[0]).toBeGreaterThan(1e-3);
    moved.dispose();
    tf.dispose([xs, ys]);
    untouched.dispose();
    stock.dispose();
    ours.dispose();
    stockOptimizer.dispose();
    ourOptimizer.dispose();
  });

  it('minimize returns the cost only when asked, and peaks lower than the stock minimize', async () => {
    const { xs, ys } = data();
    const model = mlp();
    const loss = () => tf.losses.softmaxCrossEntropy(ys, model.apply(xs) as tf.Tensor) as tf.Scalar;
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const stock = tf.train.sgd(0.01);
    const ours = releaseEarly(tf.train.sgd(0.01));
    expect(ours.minimize(loss, false, variables)).toBeNull();
    const cost = ours.minimize(loss, true, variables)!;
    expect(cost.rank).toBe(0);
    cost.dispose();
    const stockPeak = (await tf.profile(() => stock.minimize(loss, true, variables)?.dispose())).peakBytes;
    const before = tf.memory().numTensors;
    const ourPeak = (await tf.profile(() => ours.minimize(loss, true, variables)?.dispose())).peakBytes;
    expect(tf.memory().numTensors).toBe(before);
    expect(ourPeak).toBeLessThan(stockPeak);
    tf.dispose([xs, ys]);
    model.dispose();
    stock.dispose();
    ours.dispose();
  });

  it('refuses what is not an optimizer, with a typed error', () => {
    for (const bad of [null, {}, 'adam', { minimize: () => null }]) {
      expect(() => releaseEarly(bad as unknown as tf.Optimizer)).toThrow(PeftError);
      expect(() => releaseEarly(bad as unknown as tf.Optimizer)).toThrow(
        /releaseEarly: expected a tfjs optimizer/,
      );
    }
  });

  it('keeps the optimizer object and applies once', () => {
    const optimizer = tf.train.adam(0.002);
    const className = optimizer.getClassName();
    const config = optimizer.getConfig();
    expect(releasesEarly(optimizer)).toBe(false);
    expect(releaseEarly(optimizer)).toBe(optimizer);
    const minimize = optimizer.minimize;
    expect(releaseEarly(optimizer).minimize).toBe(minimize);
    expect(releasesEarly(optimizer)).toBe(true);
    expect(optimizer).toBeInstanceOf(tf.AdamOptimizer);
    expect(optimizer.getClassName()).toBe(className);
    expect(optimizer.getConfig()).toEqual(config);
    optimizer.dispose();
  });
});
