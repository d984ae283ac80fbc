import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel } from '@tfjs-peft/core';
import { describeEachBackend } from '@tfjs-peft/test-utils';
import { LoraConfig } from './index';

describeEachBackend('LoRA memory', () => {
  it('getPeftModel allocates the adapter, not a copy of the model', async () => {
    const width = 256;
    const r = 4;
    const base = tfl.sequential({
      layers: [
        tfl.layers.dense({ name: 'd1', units: width, inputShape: [width] }),
        tfl.layers.dense({ name: 'd2', units: width }),
        tfl.layers.dense({ name: 'd3', units: width }),
      ],
    });
    const before = tf.memory().numBytes;
    const peft = getPeftModel(base, new LoraConfig({ r, targetModules: ['d1', 'd2', 'd3'] }));
    const growth = tf.memory().numBytes - before;
    // A [in, r] and B [r, out], float32, per adapted layer.
    const adapterBytes = 3 * r * (width + width) * 4;
    expect(growth).toBe(adapterBytes);
    expect(peft.trainableVariables.reduce((n, v) => n + v.size * 4, 0)).toBe(adapterBytes);
    peft.unload();
    expect(tf.memory().numBytes).toBe(before);
    base.dispose();
  });
});
