// frozenDense's backward pass in each of its forms (transposed matMul; untransposed with a cached
// transpose of the frozen kernel, the wasm/XNNPACK path) against autodiff of the plain formulation,
// and the cache's lifetime: invalidated by every write to the kernel (merge, unmerge), released when
// the kernel is disposed or the frozen path is restored (unload), one kernel's bytes per layer.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { LoraConfig } from '../../peft-lora/src/index';
import { PeftConfigError } from './errors';
import {
  configureFrozenDense,
  frozenDense,
  frozenTransposeCacheSize,
  FUSABLE_ACTIVATIONS,
  type FrozenTransposeCache,
  type FusableActivation,
} from './frozen-dense';
import { installFrozenPath } from './frozen-layer-path';
import { getPeftModel } from './get-peft-model';

/** |actual − expected| ≤ 1e-5 · max|expected| (relative to the gradient's scale), element by element. */
async function expectRelativelyClose(actual: tf.Tensor, expected: tf.Tensor): Promise<void> {
  const values = await expected.data();
  const scale = Math.max(1e-30, ...Array.from(values, Math.abs));
  await expectTensorsClose(actual, expected, 1e-5 * scale);
}

const plain = (x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, activation: FusableActivation) => {
  const units = kernel.shape[1]!;
  const flat = tf.reshape(x, [-1, kernel.shape[0]!]);
  const pre = tf.add(tf.matMul(flat, kernel), bias);
  const y = activation === 'relu' ? tf.relu(pre) : activation === 'elu' ? tf.elu(pre) : pre;
  return tf.reshape(y, [...x.shape.slice(0, -1), units]);
};

function withCache<T>(
  mode: FrozenTransposeCache,
  fn: () => T,
  untransposedBackward: 'auto' | boolean = 'auto',
): T {
  const previous = configureFrozenDense({ cacheTransposes: mode, untransposedBackward });
  try {
    return fn();
  } finally {
    configureFrozenDense(previous);
  }
}

describeEachBackend('frozenDense backward forms and the cached transpose of a frozen kernel', () => {
  const modes: FrozenTransposeCache[] = ['auto', 'always', 'never'];
  const forms: ('auto' | boolean)[] = ['auto', true, false];
  for (const [mode, form] of modes.flatMap((m) => forms.map((f) => [m, f] as const))) {
    for (const activation of FUSABLE_ACTIVATIONS) {
      it(`cacheTransposes '${mode}', untransposedBackward ${form}, ${activation}, 3-D input: dx and db equal autodiff of act(x·W + b) (≤ 1e-5 relative)`, async () => {
        const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 2 * 3 * 5, 1, 'float32'), [2, 3, 5])));
        const w = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 5 * 4, 1, 'float32'), [5, 4])));
        const kernel = tf.variable(w, false, `frozen_kernel_${mode}_${activation}`);
        const b = tf.tensor1d([0.1, -0.2, 0.3, -0.4]);
        const weights = tf.tidy(() => tf.reshape(tf.range(1, 25, 1, 'float32'), [2, 3, 4]));
        const loss = (f: (x: tf.Tensor, b: tf.Tensor) => tf.Tensor) => (xs: tf.Tensor, bs: tf.Tensor) =>
          tf.sum(tf.mul(f(xs, bs), weights));
        const ours = withCache(
          mode,
          () => tf.grads(loss((xs, bs) => frozenDense(xs, kernel, bs, activation)))([x, b]),
          form,
        );
        const reference = tf.grads(loss((xs, bs) => plain(xs, kernel, bs, activation)))([x, b]);
        await expectRelativelyClose(ours[0], reference[0]);
        await expectRelativelyClose(ours[1], reference[1]);
        const forward = withCache(mode, () => tf.tidy(() => frozenDense(x, kernel, b, activation)), form);
        const plainForward = tf.tidy(() => plain(x, kernel, b, activation));
        await expectRelativelyClose(forward, plainForward);
        tf.dispose([x, w, b, weights, ...ours, ...reference, forward, plainForward]);
        kernel.dispose();
        expect(frozenTransposeCacheSize().kernels).toBe(0);
      });
    }
  }

  it('a kernel that is a plain tensor (not a variable) is never cached; gradients still exact', async () => {
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 12, 1, 'float32'), [4, 3])));
    const kernel = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 6, 1, 'float32'), [3, 2])));
    const grads = withCache('always', () =>
      tf.grad((xs: tf.Tensor) => tf.sum(tf.square(frozenDense(xs, kernel, null))))(x),
    );
    expect(frozenTransposeCacheSize().kernels).toBe(0);
    const reference = tf.grad((xs: tf.Tensor) => tf.sum(tf.square(tf.matMul(xs, kernel))))(x);
    await expectRelativelyClose(grads, reference);
    tf.dispose([x, kernel, grads, reference]);
  });

  it('the cached transpose follows every write to the kernel (merge, unmerge) and costs one kernel; dispose releases it', async () => {
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 6 * 8, 1, 'float32'), [6, 8])));
    const w1 = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 8 * 5, 1, 'float32'), [8, 5])));
    const w2 = tf.tidy(() => tf.mul(tf.sin(tf.reshape(tf.range(0, 8 * 5, 1, 'float32'), [8, 5])), 3));
    const kernel = tf.variable(w1, false, 'written_kernel');
    const gradOf = (k: tf.Tensor) =>
      tf.grad((xs: tf.Tensor) => tf.sum(tf.square(frozenDense(xs, k, null))))(x);
    const referenceOf = (k: tf.Tensor) => tf.grad((xs: tf.Tensor) => tf.sum(tf.square(tf.matMul(xs, k))))(x);
    const before = tf.memory();
    await withCache('always', async () => {
      for (const value of [w1, w2, w1, w2]) {
        kernel.assign(value); // what a LoRA merge / unmerge does to the base kernel
        const ours = gradOf(kernel);
        const reference = referenceOf(value);
        await expectRelativelyClose(ours, reference);
        tf.dispose([ours, reference]);
        expect(frozenTransposeCacheSize()).toEqual({ kernels: 1, bytes: 8 * 5 * 4 });
        const grown = tf.memory();
        expect(grown.numTensors - before.numTensors).toBe(1);
        expect(grown.numBytes - before.numBytes).toBe(8 * 5 * 4);
      }
    });
    kernel.dispose();
    expect(frozenTransposeCacheSize().kernels).toBe(0);
    tf.dispose([x, w1, w2]);
  });

  it('the frozen layer path: restore (what unload does) releases the transposes it cached', async () => {
    const dense = tfl.layers.dense({ units: 3, inputShape: [4], activation: 'relu', name: 'cached_dense' });
    const model = tfl.sequential({ layers: [dense] });
    model.trainable = false; // freezes the kernel (a Sequential re-applies its flag when it first runs)
    const restore = installFrozenPath(dense)!;
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 8, 1, 'float32'), [2, 4])));
    const tensorsBefore = tf.memory().numTensors;
    // Inference runs no backward pass, so it caches nothing (no second copy of the kernel).
    const inferred = withCache('always', () => model.predict(x) as tf.Tensor);
    expect(frozenTransposeCacheSize().kernels).toBe(0);
    inferred.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    const grad = withCache('always', () =>
      tf.grad((xs: tf.Tensor) => tf.sum(model.apply(xs) as tf.Tensor))(x),
    );
    expect(frozenTransposeCacheSize().kernels).toBe(1);
    grad.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore + 1);
    restore();
    expect(frozenTransposeCacheSize().kernels).toBe(0);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    x.dispose();
    model.dispose();
  });

  it('LoRA with the cache on: merged equals unmerged, gradients exact after merge → unmerge, unload frees every cached transpose', async () => {
    const base = tfl.sequential({
      layers: [
        tfl.layers.dense({
          name: 'fc1',
          units: 6,
          activation: 'relu',
          inputShape: [5],
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
        }),
        tfl.layers.dense({
          name: 'fc2',
          units: 3,
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 4 * 5, 1, 'float32'), [4, 5])));
    const tensorsBefore = tf.memory().numTensors;
    await withCache('always', async () => {
      const peft = getPeftModel(base, new LoraConfig({ r: 2, loraAlpha: 4, targetModules: ['fc1', 'fc2'] }));
      for (const v of peft.trainableVariables)
        if (v.name.includes('lora_B'))
          tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', 3)));
      const loss = () => tf.sum(tf.square(peft.model.apply(x) as tf.Tensor)) as tf.Scalar;
      const gradsOf = () => tf.variableGrads(loss, peft.trainableVariables);
      const first = gradsOf();
      // fc1's input is the model's input: no dx is computed there, so only fc2's kernel is cached.
      expect(frozenTransposeCacheSize().kernels).toBe(1);
      const unmerged = peft.model.predict(x) as tf.Tensor;
      await peft.mergeAdapter();
      const merged = peft.model.predict(x) as tf.Tensor;
      await expectTensorsClose(merged, unmerged, 1e-5);
      peft.unmergeAdapter();
      const again = gradsOf();
      for (const name of Object.keys(first.grads))
        await expectRelativelyClose(again.grads[name], first.grads[name]);
      const reunmerged = peft.model.predict(x) as tf.Tensor;
      await expectTensorsClose(reunmerged, unmerged, 0);
      tf.dispose([
        first.value,
        again.value,
        ...Object.values(first.grads),
        ...Object.values(again.grads),
        unmerged,
        merged,
        reunmerged,
      ]);
      peft.unload();
    });
    expect(frozenTransposeCacheSize().kernels).toBe(0);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    x.dispose();
    base.dispose();
  });

  it('refuses an unknown cacheTransposes value', () => {
    expect(() => configureFrozenDense({ cacheTransposes: 'sometimes' as FrozenTransposeCache })).toThrow(
      PeftConfigError,
    );
    expect(() => configureFrozenDense({ untransposedBackward: 'yes' as unknown as boolean })).toThrow(
      PeftConfigError,
    );
  });
});
