// fusedAdam / fusedAdamW against tf.train.adam on identical copies of the same variables, through
// optimizer.minimize and through model.fit, on every backend: equal to ≤ 1e-6 after N steps.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { PeftConfigError } from './errors';
import { FusedAdamOptimizer, fusedAdam, fusedAdamW } from './fused-adam';

const SHAPES = [[3, 4], [4], [2, 2, 3], [1]];

function makeVariables(prefix: string): tf.Variable[] {
  return SHAPES.map((shape, i) =>
    tf.tidy(() =>
      tf.variable(
        tf.sin(tf.reshape(tf.range(i, i + tf.util.sizeFromShape(shape), 1, 'float32'), shape)),
        true,
        `${prefix}_${i}`,
      ),
    ),
  );
}

/** A loss with different curvature per variable, so the moments differ from variable to variable. */
function loss(variables: tf.Variable[], step: number): tf.Scalar {
  return tf.tidy(
    () =>
      tf.addN(
        variables.map((v, i) =>
          tf.sum(tf.mul(tf.square(tf.sub(v, 0.3 * (i + 1))), tf.add(tf.abs(v), step + i + 1))),
        ),
      ) as tf.Scalar,
  );
}

async function expectAllClose(actual: tf.Tensor[], expected: tf.Tensor[]): Promise<void> {
  for (let i = 0; i < actual.length; i++) await expectTensorsClose(actual[i], expected[i], 1e-6);
}

describeEachBackend('fusedAdam: one update over all variables, equal to tf.train.adam', () => {
  it('minimize: 8 steps equal tf.train.adam (≤ 1e-6), including steps where one variable gets no gradient', async () => {
    const ours = makeVariables('fused');
    const theirs = makeVariables('stock');
    const fused = fusedAdam(0.05);
    const stock = tf.train.adam(0.05);
    for (let step = 0; step < 8; step++) {
      // Steps 3 and 4 train only the first three variables: the moments are re-laid out by name.
      const pick = (vs: tf.Variable[]) => (step === 3 || step === 4 ? vs.slice(0, 3) : vs);
      fused.minimize(() => loss(pick(ours), step), true, pick(ours))?.dispose();
      stock.minimize(() => loss(pick(theirs), step), true, pick(theirs))?.dispose();
    }
    expect(fused.iterations).toBe(8);
    await expectAllClose(ours, theirs);
    fused.dispose();
    stock.dispose();
    tf.dispose([...ours, ...theirs]);
  });

  it('fusedAdamW: decoupled weight decay — each step scales the variables by (1 − lr·wd) before the Adam step', async () => {
    const ours = makeVariables('adamw');
    const theirs = makeVariables('reference');
    const lr = 0.02;
    const wd = 0.1;
    const fused = fusedAdamW(lr, wd);
    const stock = tf.train.adam(lr);
    for (let step = 0; step < 6; step++) {
      fused.minimize(() => loss(ours, step), true, ours)?.dispose();
      const { value, grads } = tf.variableGrads(() => loss(theirs, step), theirs);
      for (const v of theirs) tf.tidy(() => v.assign(tf.mul(v, 1 - lr * wd)));
      stock.applyGradients(grads as Parameters<typeof stock.applyGradients>[0]);
      tf.dispose([value, ...Object.values(grads)]);
    }
    await expectAllClose(ours, theirs);
    fused.dispose();
    stock.dispose();
    tf.dispose([...ours, ...theirs]);
  });

  it('model.fit with fusedAdam gives the weights model.fit with tf.train.adam gives (≤ 1e-6)', async () => {
    const build = (seed: number) => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.dense({
            units: 5,
            activation: 'relu',
            inputShape: [3],
            kernelInitializer: tfl.initializers.glorotUniform({ seed }),
          }),
          tfl.layers.dense({
            units: 2,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }),
          }),
        ],
      });
      return model;
    };
    const a = build(1);
    const b = build(1);
    a.compile({ optimizer: fusedAdam(0.01), loss: 'meanSquaredError' });
    b.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const xs = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 24, 1, 'float32'), [8, 3])));
    const ys = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 16, 1, 'float32'), [8, 2])));
    await a.fit(xs, ys, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
    await b.fit(xs, ys, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
    await expectAllClose(a.getWeights(), b.getWeights());
    a.optimizer.dispose();
    b.optimizer.dispose();
    tf.dispose([xs, ys]);
    a.dispose();
    b.dispose();
  });

  it('getWeights → setWeights carries the moments to a new optimizer, as tf.train.adam does (≤ 1e-6)', async () => {
    // Both restore β^t with pow (not the running product), so both are compared through a restore.
    const ours = makeVariables('saved');
    const theirs = makeVariables('stock_saved');
    const first = fusedAdam(0.05);
    const stockFirst = tf.train.adam(0.05);
    for (let step = 0; step < 3; step++) {
      first.minimize(() => loss(ours, step), true, ours)?.dispose();
      stockFirst.minimize(() => loss(theirs, step), true, theirs)?.dispose();
    }
    const weights = await first.getWeights();
    expect(weights.map((w) => w.name)).toEqual([
      'iter',
      ...ours.map((v) => `${v.name}/m`),
      ...ours.map((v) => `${v.name}/v`),
    ]);
    const stockWeights = await stockFirst.getWeights();
    const second = fusedAdam(0.05);
    const stockSecond = tf.train.adam(0.05);
    await second.setWeights(weights);
    await stockSecond.setWeights(stockWeights);
    tf.dispose([weights[0].tensor, stockWeights[0].tensor]); // the iteration scalars are fresh tensors
    first.dispose();
    stockFirst.dispose();
    for (let step = 3; step < 6; step++) {
      second.minimize(() => loss(ours, step), true, ours)?.dispose();
      stockSecond.minimize(() => loss(theirs, step), true, theirs)?.dispose();
    }
    await expectAllClose(ours, theirs);
    second.dispose();
    stockSecond.dispose();
    tf.dispose([...ours, ...theirs]);
  });

  it('serialises as FusedAdam and refuses bad settings', () => {
    const optimizer = fusedAdamW(0.01, 0.05);
    expect(FusedAdamOptimizer.className).toBe('FusedAdam');
    expect(optimizer.getConfig()).toMatchObject({
      learningRate: 0.01,
      weightDecay: 0.05,
      beta1: 0.9,
      beta2: 0.999,
    });
    optimizer.dispose();
    expect(() => fusedAdam(-1)).toThrow(PeftConfigError);
    expect(() => fusedAdam(0.01, 1)).toThrow(PeftConfigError);
  });
});
