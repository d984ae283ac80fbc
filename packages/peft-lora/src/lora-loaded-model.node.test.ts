import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel } from '@tfjs-peft/core';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraDense } from './index';

/**
 * Saves `model` as model.json + weights.bin in `dir`, the layout tfjs's file:// handler writes. tfjs-node's
 * own file:// handler returns Node-realm typed arrays that tfjs's io rejects inside jest's sandbox, so the
 * artifacts go through withSaveHandler and fromMemory, with the files on disk in between.
 */
async function saveToFolder(model: tfl.LayersModel, dir: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = tf.io.CompositeArrayBuffer.join(artifacts.weightData!);
      await writeFile(join(dir, 'weights.bin'), new Uint8Array(weightData));
      const modelJson = {
        modelTopology: artifacts.modelTopology,
        format: 'layers-model',
        weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

async function loadFromFolder(dir: string): Promise<tfl.LayersModel> {
  const modelJson = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const bin = new Uint8Array(await readFile(join(dir, modelJson.weightsManifest[0].paths[0])));
  const weightData = bin.slice().buffer;
  return tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest[0].weights,
      weightData,
    }),
  );
}

describeEachBackend('getPeftModel on a model loaded from model.json', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tfjs-peft-loaded-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('adapts dense_1, trains one step, and leaves the loaded base weights bit-identical', async () => {
    const original = tfl.sequential({
      layers: [
        tfl.layers.dense({
          name: 'dense_0',
          units: 5,
          inputShape: [4],
          activation: 'relu',
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }),
        }),
        tfl.layers.dense({
          name: 'dense_1',
          units: 5,
          activation: 'tanh',
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
        }),
        tfl.layers.dense({
          name: 'dense_2',
          units: 2,
          kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
        }),
      ],
    });
    await saveToFolder(original, dir);
    const base = await loadFromFolder(dir);
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 12), [3, 4])));
    const y = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 6), [3, 2])));
    const expected = original.predict(x) as tf.Tensor;
    const loaded = base.predict(x) as tf.Tensor;
    await expectTensorsClose(loaded, expected, 0);

    const baseBefore = await snapshotWeights(base);
    const peft = getPeftModel(base, new LoraConfig({ r: 2, targetModules: ['dense_1'] }));
    expect(peft.model.layers.filter((l) => l instanceof LoraDense).map((l) => l.name)).toEqual(['dense_1']);
    // A [in, r] and B [r, out] in tfjs layout.
    expect(peft.trainableVariables.map((v) => v.shape)).toEqual([
      [5, 2],
      [2, 5],
    ]);
    const adapted = peft.model.predict(x) as tf.Tensor;
    await expectTensorsClose(adapted, expected, 1e-6);
    const loraBefore = await snapshotWeights(peft.trainableVariables);

    const optimizer = tf.train.sgd(0.1);
    const cost = optimizer.minimize(
      () => tf.losses.meanSquaredError(y, peft.model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
      true,
      peft.trainableVariables,
    );
    expect((await cost!.data())[0]).toBeGreaterThan(0);

    expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
    const loraAfter = await snapshotWeights(peft.trainableVariables);
    expect(
      loraAfter.some((w, i) => Buffer.compare(Buffer.from(w.bytes), Buffer.from(loraBefore[i].bytes)) !== 0),
    ).toBe(true);

    tf.dispose([x, y, expected, loaded, adapted, cost!]);
    optimizer.dispose();
    peft.unload();
    base.dispose();
    original.dispose();
  });
});
