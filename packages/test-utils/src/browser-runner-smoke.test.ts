// Smoke test for the browser runner (tools/browser-tests): a matMul, a gradient and a small
// layers model on each backend, checked against values computed by hand.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend } from './describe-each-backend';

describeEachBackend('browser runner smoke test', (backend) => {
  it('runs on the backend under test', () => {
    expect(tf.getBackend()).toBe(backend);
  });

  it('computes a matMul', async () => {
    const a = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    const b = tf.tensor2d([
      [7, 8],
      [9, 10],
      [11, 12],
    ]);
    const product = tf.matMul(a, b);
    expect(product.shape).toEqual([2, 2]);
    expect(Array.from(await product.data())).toEqual([58, 64, 139, 154]);
    tf.dispose([a, b, product]);
  });

  it('computes a gradient', async () => {
    const x = tf.tensor1d([1, 2, 3]);
    const gradient = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(t, t)))(x);
    const values = Array.from(await gradient.data());
    values.forEach((value, index) => expect(value).toBeCloseTo([2, 4, 6][index], 5));
    tf.dispose([x, gradient]);
  });

  it('fits a one-unit dense layer', async () => {
    const model = tfl.sequential({
      layers: [tfl.layers.dense({ units: 1, inputShape: [1], kernelInitializer: 'zeros' })],
    });
    const optimizer = tf.train.sgd(0.1);
    model.compile({ optimizer, loss: 'meanSquaredError' });
    const xs = tf.tensor2d([[0], [1], [2], [3]]);
    const ys = tf.tensor2d([[1], [3], [5], [7]]);
    const history = await model.fit(xs, ys, { epochs: 200, verbose: 0, batchSize: 4 });
    const loss = history.history.loss as number[];
    expect(loss[loss.length - 1]).toBeLessThan(1e-3);
    // await data(), not dataSync(): on webgpu in Chromium a dataSync() of these weights read zeros and
    // destroyed the GPU device.
    const [kernel, bias] = (await Promise.all(model.getWeights().map((weight) => weight.data()))).map(
      (v) => v[0],
    );
    expect(kernel).toBeCloseTo(2, 1);
    expect(bias).toBeCloseTo(1, 1);
    tf.dispose([xs, ys]);
    model.dispose();
    optimizer.dispose();
  });

  it.each([
    [[1, 2], 3],
    [[10, -4], 6],
  ])('sums %j to %d', async (values, expected) => {
    const total = tf.tidy(() => tf.sum(tf.tensor1d(values as number[])));
    expect((await total.data())[0]).toBe(expected);
    total.dispose();
  });

  it.skip('is skipped', () => {
    throw new Error('skipped tests do not run');
  });
});
