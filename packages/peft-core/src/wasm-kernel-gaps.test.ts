import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { WASM_KERNELS_FILLED } from './index';

describeEachBackend('gradients that need the kernels wasm lacks', () => {
  it('lists what it fills', () => {
    expect(WASM_KERNELS_FILLED).toEqual(['UnsortedSegmentSum', 'Conv2DBackpropFilter']);
  });

  it("tf.gather's gradient (UnsortedSegmentSum) equals the one-hot matMul formulation, duplicates summed", async () => {
    const table = tf.tidy(() => tf.reshape(tf.range(0, 15, 1, 'float32'), [5, 3]));
    const ids = tf.tensor1d([4, 1, 1, 0, 4, 4], 'int32');
    const weights = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 18, 1, 'float32'), [6, 3])));
    const viaGather = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), weights)))(table);
    const viaOneHot = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.matMul(tf.oneHot(ids, 5), t), weights)))(
      table,
    );
    await expectTensorsClose(viaGather, viaOneHot, 1e-5);
    tf.dispose([table, ids, weights, viaGather, viaOneHot]);
  });

  for (const [strides, pad] of [
    [1, 'same'],
    [2, 'valid'],
    [2, 'same'],
  ] as const) {
    it(`a convolution's filter gradient (strides ${strides}, ${pad}) equals the patch-matrix formulation`, async () => {
      const x = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 2 * 5 * 5 * 2, 1, 'float32'), [2, 5, 5, 2])));
      const filter = tf.tidy(() =>
        tf.sin(tf.reshape(tf.range(0, 3 * 3 * 2 * 3, 1, 'float32'), [3, 3, 2, 3])),
      );
      const weights = tf.tidy(() =>
        tf.onesLike(tf.conv2d(x as tf.Tensor4D, filter as tf.Tensor4D, strides, pad)),
      );
      const scaled = tf.tidy(() =>
        tf.mul(weights, tf.reshape(tf.range(1, weights.size + 1, 1, 'float32'), weights.shape)),
      );
      const grad = tf.grad((f: tf.Tensor) =>
        tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, strides, pad), scaled)),
      )(filter);
      // Reference: the same sum written as explicit shifted slices of the padded input (no conv kernel).
      const reference = tf.grad((f: tf.Tensor) => {
        const [, outH, outW] = scaled.shape;
        const padTotal = (size: number) => Math.max((outH! - 1) * strides + 3 - size, 0);
        const padded =
          pad === 'same'
            ? tf.pad(x, [
                [0, 0],
                [Math.floor(padTotal(5) / 2), padTotal(5) - Math.floor(padTotal(5) / 2)],
                [Math.floor(padTotal(5) / 2), padTotal(5) - Math.floor(padTotal(5) / 2)],
                [0, 0],
              ])
            : x;
        let total = tf.scalar(0);
        for (let i = 0; i < outH!; i++) {
          for (let j = 0; j < outW!; j++) {
            const patch = tf.slice(padded, [0, i * strides, j * strides, 0], [2, 3, 3, 2]);
            const out = tf.matMul(tf.reshape(patch, [2, 18]), tf.reshape(f, [18, 3]));
            total = tf.add(
              total,
              tf.sum(tf.mul(out, tf.reshape(tf.slice(scaled, [0, i, j, 0], [2, 1, 1, 3]), [2, 3]))),
            );
          }
        }
        return total;
      })(filter);
      await expectTensorsClose(grad, reference, 1e-3);
      tf.dispose([x, filter, weights, scaled, grad, reference]);
    });
  }
});
