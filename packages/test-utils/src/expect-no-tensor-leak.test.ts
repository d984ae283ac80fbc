import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend } from './describe-each-backend';
import { expectNoTensorLeak, memoryDelta } from './expect-no-tensor-leak';

describeEachBackend('expectNoTensorLeak / memoryDelta', () => {
  it('passes for a tidy block and returns its result', async () => {
    const result = await expectNoTensorLeak(async () => {
      const total = tf.tidy(() => tf.sum(tf.ones([4])));
      const value = (await total.data())[0]; // never dataSync(): webgpu cannot read synchronously in Node
      total.dispose();
      return value;
    });
    expect(result).toBe(4);
  });

  it('detects a deliberate leak in a sync block', async () => {
    let leaked: tf.Tensor | undefined;
    await expect(
      expectNoTensorLeak(() => {
        leaked = tf.ones([2]);
      }, 'sync leak'),
    ).rejects.toThrow(/Tensor leak in sync leak: numTensors \d+ -> \d+ \(\+1\)/);
    leaked?.dispose();
  });

  it('detects a deliberate leak in an async block', async () => {
    const kept: tf.Tensor[] = [];
    await expect(
      expectNoTensorLeak(async () => {
        const x = tf.ones([3]);
        await x.data();
        kept.push(x, tf.add(x, 1));
      }),
    ).rejects.toThrow(/\(\+2\)/);
    tf.dispose(kept);
  });

  it('reports the bytes left allocated', async () => {
    const { bytes, tensors, result } = await memoryDelta(() => tf.zeros([10, 5]));
    expect(bytes).toBe(10 * 5 * 4);
    expect(tensors).toBe(1);
    result.dispose();
    const none = await memoryDelta(async () => tf.tidy(() => tf.sum(tf.zeros([100]))).dispose());
    expect(none.bytes).toBe(0);
  });
});
