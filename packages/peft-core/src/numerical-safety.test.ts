// Numerical safety on every backend: merging refuses non-finite deltas for LoRA and DoRA (NaN/Inf in
// A, B or the magnitude, and finite factors whose product overflows) and leaves every weight as it
// was; float16 inputs (tfjs 4.22 has no float16 dtype) error clearly at tensor creation on every
// backend; int32/bool inputs are cast to float32 by the layers and give the float32 result.
// LoRA is imported from its sources by path (core must not depend on a method package).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectWeightsBitIdentical, snapshotWeights } from '@tfjs-peft/test-utils';
import { LoraConfig } from '../../peft-lora/src/index';
import { NonFiniteWeightError } from './errors';
import { getPeftModel } from './get-peft-model';
import type { PeftModel } from './peft-model';

function makeBase(): tfl.LayersModel {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'fc1',
        units: 5,
        activation: 'relu',
        inputShape: [4],
        kernelInitializer: init(1),
      }),
      tfl.layers.dense({ name: 'fc2', units: 3, kernelInitializer: init(2) }),
    ],
  });
}

/** Overwrites the first element of the named adapter variable of layer fc2 (the last one merged). */
async function poison(peft: PeftModel, adapter: string, variable: RegExp, value: number): Promise<void> {
  const layer = peft.peftLayers().find((l) => l.name === 'fc2')!;
  const v = layer.adapterVariables(adapter).find((w) => variable.test(w.name));
  if (!v)
    throw new Error(
      `no variable matching ${variable} in ${layer.adapterVariables(adapter).map((w) => w.name)}`,
    );
  const data = Float32Array.from(await v.read().data());
  // A product that overflows: every element large, not just one.
  if (Number.isFinite(value)) data.fill(value);
  else data[0] = value;
  const next = tf.tensor(data, v.shape as number[]);
  v.write(next);
  next.dispose();
}

describeEachBackend('numerical safety', () => {
  const cases: Array<[string, boolean, RegExp, number]> = [
    ['LoRA: NaN in lora_B', false, /lora_B/, NaN],
    ['LoRA: Infinity in lora_A', false, /lora_A/, Infinity],
    ['LoRA: finite factors whose product overflows float32', false, /lora_B/, 3e38],
    ['DoRA: NaN in lora_A', true, /lora_A/, NaN],
    ['DoRA: -Infinity in the magnitude', true, /magnitude/, -Infinity],
    ['DoRA: NaN in the magnitude', true, /magnitude/, NaN],
    ['DoRA: a product that overflows float32', true, /lora_B/, 3e38],
  ];
  for (const [what, useDora, variable, value] of cases) {
    it(`safeMerge refuses a non-finite merge (${what}), naming the layer; nothing is written`, async () => {
      const base = makeBase();
      const peft = getPeftModel(
        base,
        new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'], useDora, initLoraWeights: 'gaussian' }),
      );
      await poison(peft, 'default', variable, value);
      const before = await snapshotWeights(peft.model);
      const error = await peft.mergeAdapter(['default'], { safeMerge: true }).then(
        () => null,
        (e) => e,
      );
      expect(error).toBeInstanceOf(NonFiniteWeightError);
      expect((error as NonFiniteWeightError).layerName).toBe('fc2');
      expect(peft.peftLayers().every((l) => l.mergedAdapters.length === 0)).toBe(true);
      expectWeightsBitIdentical(before, await snapshotWeights(peft.model));
      // mergeAndUnload refuses too, and leaves the adapters attached.
      await expect(peft.mergeAndUnload({ safeMerge: true })).rejects.toThrow(NonFiniteWeightError);
      expectWeightsBitIdentical(before, await snapshotWeights(peft.model));
      peft.unload();
      base.dispose();
    });
  }

  it('safeMerge accepts a finite DoRA adapter and unmerge restores the base bit-exactly', async () => {
    const base = makeBase();
    const baseBefore = await snapshotWeights(base);
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'], useDora: true, initLoraWeights: 'gaussian' }),
    );
    await peft.mergeAdapter(['default'], { safeMerge: true });
    expect(peft.peftLayers().map((l) => l.mergedAdapters)).toEqual([['default'], ['default']]);
    peft.unmergeAdapter();
    peft.unload();
    expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
    base.dispose();
  });

  it('float16: tfjs 4.22 has no float16 dtype; creating or casting to one throws a clear error', () => {
    expect(() => tf.tensor([1, 2], [2], 'float16' as tf.DataType)).toThrow('Unknown data type float16');
    expect(() => tf.zeros([2], 'float16' as tf.DataType)).toThrow('Unknown data type float16');
    const x = tf.ones([2]);
    expect(() => tf.cast(x, 'float16' as tf.DataType)).toThrow('Failed to cast to unknown dtype float16');
    x.dispose();
  });

  it('int32 and bool inputs are cast to float32 and give the float32 result bit for bit', async () => {
    const base = makeBase();
    const peft = getPeftModel(
      base,
      new LoraConfig({ r: 2, targetModules: ['fc1', 'fc2'], initLoraWeights: 'gaussian' }),
    );
    const values = [0, 1, 1, 0, 1, 0, 0, 1];
    const xFloat = tf.tensor2d(values, [2, 4], 'float32');
    const reference = peft.model.predict(xFloat) as tf.Tensor;
    for (const dtype of ['int32', 'bool'] as const) {
      const x = tf.tensor2d(values, [2, 4], dtype);
      const y = peft.model.predict(x) as tf.Tensor;
      expect(y.dtype).toBe('float32');
      expect(new Uint8Array((await y.data()).buffer)).toEqual(
        new Uint8Array((await reference.data()).buffer),
      );
      tf.dispose([x, y]);
    }
    tf.dispose([xFloat, reference]);
    peft.unload();
    base.dispose();
  });
});
