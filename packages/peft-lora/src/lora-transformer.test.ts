import * as tf from '@tensorflow/tfjs-core';
import {
  getPeftModel,
  MemoryAdapterStore,
  parseSafetensors,
  PeftModel,
  serializeSafetensors,
} from '@tfjs-peft/core';
import {
  buildTransformerEncoder,
  withClassifierHead,
  type TransformerEncoderConfig,
} from '@tfjs-peft/models';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
} from '@tfjs-peft/test-utils';
import { LoraConfig, LoraDense } from './index';

const config: TransformerEncoderConfig = {
  vocabSize: 30,
  embeddingSize: 16,
  positionEncoding: 'learned',
  maxPositions: 8,
  blocks: [
    { hiddenSize: 16, numHeads: 2, intermediateSize: 24 },
    { hiddenSize: 16, numHeads: 2, intermediateSize: 24 },
  ],
  normalization: 'post',
  layerNormEpsilon: 1e-6,
  pooling: 'mean',
};

function inputs(): [tf.Tensor, tf.Tensor] {
  const ids = tf.tensor2d(
    [
      [1, 5, 7, 2, 0, 0],
      [3, 3, 9, 11, 4, 6],
    ],
    [2, 6],
    'int32',
  );
  const mask = tf.tensor2d(
    [
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1],
    ],
    [2, 6],
  );
  return [ids, mask];
}

describeEachBackend('LoRA on the attention projections of a transformer encoder', () => {
  it('targets query and value by name, trains only them and the head, round-trips, and maps PyTorch names', async () => {
    const classifier = withClassifierHead(buildTransformerEncoder(config, 'tiny'), 2);
    const before = await snapshotWeights(classifier);
    const peft = getPeftModel(
      classifier,
      new LoraConfig({
        r: 2,
        loraAlpha: 4,
        targetModules: ['query', 'value'],
        modulesToSave: ['classifier'],
        layersToTransform: [1],
      }),
    );
    const wrapped = peft.model.layers.filter((l) => l instanceof LoraDense).map((l) => l.name);
    expect(wrapped).toEqual(['encoder/layer_1/attention/query', 'encoder/layer_1/attention/value']);
    const [ids, mask] = inputs();
    const labels = tf.tensor2d([
      [1, 0],
      [0, 1],
    ]);
    peft.model.compile({ optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy' });
    const history = await peft.model.fit([ids, mask], labels, { epochs: 4, batchSize: 2, verbose: 0 });
    expect(history.history.loss[3]).toBeLessThan(history.history.loss[0] as number);
    expectWeightsBitIdentical(before, await snapshotWeights(classifier));
    const trained = peft.model.predict([ids, mask]) as tf.Tensor;
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const json = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
    expect(json.layers_to_transform).toEqual([1]);
    peft.model.optimizer.dispose();
    peft.unload();
    const reloaded = await PeftModel.fromPretrained(classifier, store);
    const out = reloaded.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(out, trained, 1e-6);
    reloaded.unload();

    // The same adapter with Hugging Face BERT's module paths loads through a name mapping.
    const file = parseSafetensors(store.files.get('adapter_model.safetensors')!);
    const torchNames = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [key, tensor] of file.tensors) {
      torchNames.set(
        key.replace('encoder.layer_1.attention.', 'bert.encoder.layer.1.attention.self.'),
        tensor,
      );
    }
    const renamed = new MemoryAdapterStore();
    renamed.files.set('adapter_model.safetensors', serializeSafetensors(torchNames));
    renamed.files.set('adapter_config.json', store.files.get('adapter_config.json')!);
    await expect(PeftModel.fromPretrained(classifier, renamed)).rejects.toThrow(
      /bert\.encoder\.layer\.1.*nameMapping/,
    );
    const mapped = await PeftModel.fromPretrained(classifier, renamed, {
      nameMapping: (path) =>
        path.replace(/^bert\.encoder\.layer\.(\d+)\.attention\.self\./, 'encoder/layer_$1/attention/'),
    });
    const mappedOut = mapped.model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(mappedOut, trained, 1e-6);
    tf.dispose([ids, mask, labels, trained, out, mappedOut]);
    mapped.unload();
    classifier.dispose();
  });
});
