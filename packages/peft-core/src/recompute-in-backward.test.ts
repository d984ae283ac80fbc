// recomputeInBackward: gradients equal plain autodiff (≤ 1e-5 relative) for an attention-shaped
// function, with a non-differentiable mask input and through variableGradsReleasingEarly; the step's
// tf.profile peak is lower (the quadratic scores are not kept); no tensor left behind.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { variableGradsReleasingEarly } from './eager-release-gradients';
import { recomputeInBackward } from './recompute-in-backward';

/** Softmax attention of q [b, n, d] over k, v [b, n, d] with an additive padding mask [b, n]. */
function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  const scores = tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(q.shape[2]!));
  const masked = tf.add(scores, tf.expandDims(tf.mul(tf.sub(1, mask), -1e9), 1));
  return tf.matMul(tf.softmax(masked), v);
}

function wave(shape: number[], phase: number): tf.Tensor {
  return tf.tidy(() =>
    tf.sin(
      tf.add(tf.mul(tf.reshape(tf.range(0, tf.util.sizeFromShape(shape), 1, 'float32'), shape), 0.37), phase),
    ),
  );
}

/**
 * `layers` attention layers stacked on x (each: q, k, v = h·W for three shared variables, then
 * attention, plus a residual), summed-squares loss: the gradient reaches the variables through every layer.
 */
function setup(batch: number, length: number, width: number, layers: number) {
  const x = wave([batch, length, width], 0.1);
  const weights = [0.2, 0.5, 0.9].map((p, i) => {
    const initial = tf.tidy(() => tf.mul(wave([width, width], p), 0.3));
    const weight = tf.variable(initial, true, `recompute_w${i}_${length}`);
    initial.dispose();
    return weight;
  });
  const mask = tf.tidy(() => tf.concat([tf.ones([batch, length - 3]), tf.zeros([batch, 3])], 1));
  const loss = (attend: (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, m: tf.Tensor) => tf.Tensor) => () =>
    tf.tidy(() => {
      let h = x;
      for (let layer = 0; layer < layers; layer++) {
        const [q, k, v] = weights.map((w) => tf.reshape(tf.matMul(tf.reshape(h, [-1, width]), w), h.shape));
        h = tf.add(h, attend(q!, k!, v!, mask));
      }
      return tf.sum(tf.square(h)) as tf.Scalar;
    });
  const dispose = () => tf.dispose([x, mask, ...weights]);
  return { weights, loss, dispose };
}

describeEachBackend('recomputeInBackward: gradient checkpointing of one function', () => {
  it('gradients equal plain autodiff (≤ 1e-5 relative); the mask gets zeros; forward values equal', async () => {
    const { weights, loss, dispose } = setup(2, 12, 8, 2);
    const checkpointed = recomputeInBackward(attention, { differentiable: [true, true, true, false] });
    const plain = tf.variableGrads(loss(attention), weights);
    const ours = tf.variableGrads(loss(checkpointed), weights);
    const early = variableGradsReleasingEarly(loss(checkpointed), weights);
    try {
      await expectTensorsClose(ours.value, plain.value, 1e-5);
      for (const w of weights) {
        const scale = Math.max(...Array.from(await plain.grads[w.name]!.data(), Math.abs));
        await expectTensorsClose(ours.grads[w.name]!, plain.grads[w.name]!, 1e-5 * scale);
        await expectTensorsClose(early.grads[w.name]!, plain.grads[w.name]!, 1e-5 * scale);
      }
      const [q, k, v] = [0, 1, 2].map((phase) => wave([1, 4, 2], phase));
      const ones = tf.ones([1, 4]);
      const maskGrad = tf.grads((m: tf.Tensor) => tf.sum(checkpointed(q!, k!, v!, m)))([ones]);
      expect(Array.from(await maskGrad[0]!.data())).toEqual([0, 0, 0, 0]);
      tf.dispose([q!, k!, v!, ones]);
      tf.dispose(maskGrad);
    } finally {
      tf.dispose([plain.value, ours.value, early.value, plain.grads, ours.grads, early.grads]);
      dispose();
    }
  });

  it('a step keeps less: the tf.profile peak is lower than plain autodiff for a long sequence; no tensor left', async () => {
    const { weights, loss, dispose } = setup(2, 96, 8, 4);
    const checkpointed = recomputeInBackward(attention, { differentiable: [true, true, true, false] });
    const peakOf = async (f: () => tf.Scalar) =>
      (
        await tf.profile(() => {
          const { value, grads } = variableGradsReleasingEarly(f, weights);
          tf.dispose([value, grads]);
        })
      ).peakBytes;
    const before = tf.memory().numTensors;
    const plainPeak = await peakOf(loss(attention));
    const ourPeak = await peakOf(loss(checkpointed));
    expect(tf.memory().numTensors).toBe(before);
    // Plain keeps every layer's scores and probabilities (2·96·96 floats each) until the backward pass
    // reaches it; checkpointed, only one layer's exist at a time, while its gradient is taken.
    expect(ourPeak).toBeLessThan(plainPeak);
    dispose();
  });

  it('refuses a function that does not return a tensor', () => {
    const broken = recomputeInBackward((() => [tf.scalar(1)]) as unknown as (x: tf.Tensor) => tf.Tensor);
    const x = tf.scalar(2);
    expect(() => broken(x)).toThrow(/must return one tensor/);
    x.dispose();
  });
});
