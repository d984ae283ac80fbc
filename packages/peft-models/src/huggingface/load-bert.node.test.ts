import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { bertFromHuggingFace, layerNames, loadBert, type HuggingFaceBertConfig } from '../index';

const FIXTURE = join(__dirname, '../../../../fixtures/tiny-bert');

interface BertIo {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  base_outputs: { logits: number[][]; pooler_output: number[][]; last_hidden_state: number[][][] };
}

describeEachBackend('Hugging Face BERT loader (fixtures/tiny-bert)', () => {
  const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as HuggingFaceBertConfig;
  const io = JSON.parse(readFileSync(join(FIXTURE, 'io.json'), 'utf8')) as BertIo;
  const bytes = new Uint8Array(readFileSync(join(FIXTURE, 'model.safetensors')));

  it('reproduces transformers’ logits, pooler output and last hidden state (≤1e-4)', async () => {
    const model = bertFromHuggingFace(config, bytes);
    const probe = tfl.model({
      inputs: model.inputs,
      outputs: [
        model.outputs[0],
        model.getLayer(layerNames.poolerActivation).output as tfl.SymbolicTensor,
        model.getLayer(layerNames.block(1).ffnOutputLayerNorm).output as tfl.SymbolicTensor,
      ],
    });
    const ids = tf.tensor2d(io.inputs.input_ids, undefined, 'int32');
    const mask = tf.tensor2d(io.inputs.attention_mask, undefined, 'float32');
    const [logits, pooled, hidden] = probe.predict([ids, mask]) as tf.Tensor[];
    await expectTensorsClose(logits, io.base_outputs.logits, 1e-4);
    await expectTensorsClose(pooled, io.base_outputs.pooler_output, 1e-4);
    await expectTensorsClose(hidden, io.base_outputs.last_hidden_state, 1e-4);
    tf.dispose([ids, mask, logits, pooled, hidden]);
    model.dispose();
  });

  it('loads the same checkpoint from its folder (path or file:// URL)', async () => {
    const model = await loadBert(`file://${FIXTURE}`);
    const ids = tf.tensor2d(io.inputs.input_ids, undefined, 'int32');
    const mask = tf.tensor2d(io.inputs.attention_mask, undefined, 'float32');
    const logits = model.predict([ids, mask]) as tf.Tensor;
    await expectTensorsClose(logits, io.base_outputs.logits, 1e-4);
    tf.dispose([ids, mask, logits]);
    model.dispose();
  });

  it('refuses a checkpoint with a missing or misshapen tensor, naming it', () => {
    const config2 = { ...config, hidden_size: 32, intermediate_size: 64 };
    expect(() => bertFromHuggingFace(config2, bytes)).toThrow(
      /bert\.embeddings\.(word|position|token_type)_embeddings\.weight" has shape/,
    );
  });
});
