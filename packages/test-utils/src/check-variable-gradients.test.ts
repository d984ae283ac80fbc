import * as tf from '@tensorflow/tfjs-core';
import { checkVariableGradients } from './check-variable-gradients';
import { describeEachBackend } from './describe-each-backend';
import { expectNoTensorLeak } from './expect-no-tensor-leak';

async function bits(t: tf.Tensor): Promise<number[]> {
  return Array.from(new Uint32Array(Float32Array.from(await t.data()).buffer));
}

function variable(values: number[][] | number[], name: string): tf.Variable {
  const initial = Array.isArray(values[0])
    ? tf.tensor2d(values as number[][])
    : tf.tensor1d(values as number[]);
  const v = tf.variable(initial, true, name);
  initial.dispose();
  return v;
}

describeEachBackend('checkVariableGradients', (backend) => {
  it('accepts correct gradients of a small network, restores the variables bit-exactly and leaks nothing', async () => {
    const x = tf.tensor2d([
      [0.5, -1, 2],
      [1.5, 0.25, -0.75],
    ]);
    // Values that are not exactly representable after ± epsilon, so a sloppy restore would show.
    const w = variable(
      [
        [0.1, -0.2],
        [0.3, 0.4],
        [-0.5, 0.6],
      ],
      `cvg_w_${backend}`,
    );
    const b = variable([0.05, -0.1], `cvg_b_${backend}`);
    const loss = () => tf.tidy(() => tf.mean(tf.square(tf.tanh(tf.add(tf.matMul(x, w), b)))) as tf.Scalar);
    const wBits = await bits(w);
    const bBits = await bits(b);
    const result = await expectNoTensorLeak(
      () => checkVariableGradients(loss, [w, b]),
      'checkVariableGradients',
    );
    expect(result.checked).toBe(8);
    expect(result.maxError).toBeLessThan(1e-2);
    expect(await bits(w)).toEqual(wBits);
    expect(await bits(b)).toEqual(bBits);
    // stride: elements 0, 3 of w (6) and 0 of b (2).
    const strided = await expectNoTensorLeak(() => checkVariableGradients(loss, [w, b], { stride: 3 }));
    expect(strided.checked).toBe(3);
    expect(await bits(w)).toEqual(wBits);
    tf.dispose([x, w, b]);
  });

  it('rejects a deliberately wrong gradient, naming the variable, shape and element; restores and leaks nothing', async () => {
    // loss = sum(v²) with a custom gradient of 3v instead of 2v.
    const wrongSquareSum = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const v = args[0] as tf.Tensor;
      (args[1] as tf.GradSaveFunc)([v]);
      return {
        value: tf.sum(tf.square(v)),
        gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) => tf.mul(dy, tf.mul(saved, 3)),
      };
    });
    const v = variable([1, 2, 3], `cvg_wrong_${backend}`);
    const before = await bits(v);
    const loss = () => tf.tidy(() => wrongSquareSum(v) as tf.Scalar);
    await expectNoTensorLeak(async () => {
      await expect(checkVariableGradients(loss, [v])).rejects.toThrow(
        new RegExp(
          `gradient mismatch for variable cvg_wrong_${backend} of shape \\[3\\] at element 0: analytic 3, numeric (2|1\\.99\\d*) `,
        ),
      );
    }, 'failing checkVariableGradients');
    expect(await bits(v)).toEqual(before);
    // A small error passes only within tolerance: 3v vs 2v is a 50% error, so even 0.4 rejects it.
    await expect(checkVariableGradients(loss, [v], { tolerance: 0.4 })).rejects.toThrow(/element 0/);
    expect(await bits(v)).toEqual(before);
    v.dispose();
  });

  it('rejects a variable the loss does not use, a non-scalar loss, and a bad stride, without leaking', async () => {
    const used = variable([0.5, -0.25], `cvg_used_${backend}`);
    const unused = variable([1, 2], `cvg_unused_${backend}`);
    const before = await bits(used);
    await expectNoTensorLeak(async () => {
      await expect(
        checkVariableGradients(() => tf.tidy(() => tf.sum(tf.square(used)) as tf.Scalar), [used, unused]),
      ).rejects.toThrow(
        new RegExp(`no analytic gradient for variable cvg_unused_${backend} of shape \\[2\\]`),
      );
      await expect(
        checkVariableGradients(() => tf.square(used) as unknown as tf.Scalar, [used]),
      ).rejects.toThrow(/loss must return a scalar, got shape \[2\]/);
      await expect(
        checkVariableGradients(() => tf.sum(used) as tf.Scalar, [used], { stride: 0 }),
      ).rejects.toThrow(/stride/);
    });
    expect(await bits(used)).toEqual(before);
    tf.dispose([used, unused]);
  });
});
