import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MemoryAdapterStore } from '@tfjs-peft/core';
import { checkVariableGradients, describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import {
  gpt2FromHuggingFace,
  gpt2LayerNames,
  loadGpt2,
  TiedEmbeddingHead,
  type HuggingFaceGpt2Config,
} from '../index';

const FIXTURE = join(__dirname, '../../../../fixtures/tiny-gpt2');

interface Gpt2Io {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  base_outputs: { logits: number[][][]; last_hidden_state: number[][][] };
}

const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as HuggingFaceGpt2Config;
const io = JSON.parse(readFileSync(join(FIXTURE, 'io.json'), 'utf8')) as Gpt2Io;
const bytes = new Uint8Array(readFileSync(join(FIXTURE, 'model.safetensors')));

function logitsOf(model: tfl.LayersModel, ids: number[][], mask: number[][]): tf.Tensor {
  return tf.tidy(() => {
    const idTensor = tf.tensor2d(ids, undefined, 'int32');
    const maskTensor = tf.tensor2d(mask, undefined, 'float32');
    return model.predict([idTensor, maskTensor]) as tf.Tensor;
  });
}

/** Two right-padded token rows, their mask and one-hot next-token targets (vocabulary 50). */
function nextTokenBatch(): { ids: tf.Tensor2D; mask: tf.Tensor2D; targets: tf.Tensor } {
  return {
    ids: tf.tensor2d(
      [
        [5, 12, 7, 33],
        [3, 44, 21, 0],
      ],
      undefined,
      'int32',
    ),
    mask: tf.tensor2d([
      [1, 1, 1, 1],
      [1, 1, 1, 0],
    ]),
    targets: tf.tidy(() =>
      tf.oneHot(
        tf.tensor2d(
          [
            [12, 7, 33, 41],
            [44, 21, 8, 0],
          ],
          undefined,
          'int32',
        ),
        50,
      ),
    ),
  };
}

describeEachBackend('Hugging Face GPT-2 loader (fixtures/tiny-gpt2)', () => {
  let model: tfl.LayersModel;

  beforeAll(async () => {
    model = await loadGpt2(FIXTURE);
  });

  afterAll(() => model.dispose());

  it('reproduces transformers’ logits and last hidden state (≤1e-4)', async () => {
    const probe = tfl.model({
      inputs: model.inputs,
      outputs: [model.outputs[0], model.getLayer(gpt2LayerNames.finalLayerNorm).output as tfl.SymbolicTensor],
    });
    const ids = tf.tensor2d(io.inputs.input_ids, undefined, 'int32');
    const mask = tf.tensor2d(io.inputs.attention_mask, undefined, 'float32');
    const [logits, hidden] = probe.predict([ids, mask]) as tf.Tensor[];
    expect(logits.shape).toEqual([2, 8, config.vocab_size]);
    await expectTensorsClose(logits, io.base_outputs.logits, 1e-4);
    await expectTensorsClose(hidden, io.base_outputs.last_hidden_state, 1e-4);
    tf.dispose([ids, mask, logits, hidden]);
  });

  it('keeps GPT-2’s module names, and ties lm_head to the wte variable itself', () => {
    const names = model.layers.map((l) => l.name);
    for (const name of [
      'transformer/h/0/attn/c_attn',
      'transformer/h/1/attn/c_proj',
      'transformer/h/1/mlp/c_fc',
    ]) {
      expect(names).toContain(name);
      expect(model.getLayer(name).getClassName()).toBe('Dense');
    }
    const head = model.getLayer(gpt2LayerNames.lmHead);
    expect(head).toBeInstanceOf(TiedEmbeddingHead);
    expect(head.weights).toHaveLength(0);
    // One token table in the model: the head reads it, owns nothing.
    const tables = model.weights.filter((w) => w.shape[0] === config.vocab_size);
    expect(tables).toHaveLength(1);
    expect(model.countParams()).toBe(
      50 * 16 + 32 * 16 + 2 * (4 * 16 + 16 * 48 + 48 + 16 * 16 + 16 + 16 * 64 + 64 + 64 * 16 + 16) + 2 * 16,
    );
  });

  it('is causal: changing a later token leaves earlier positions’ logits unchanged', async () => {
    const a = logitsOf(model, [[5, 12, 7, 33, 41, 2]], [[1, 1, 1, 1, 1, 1]]);
    const b = logitsOf(model, [[5, 12, 7, 40, 3, 9]], [[1, 1, 1, 1, 1, 1]]);
    const [a3, b3, aLast, bLast] = tf.tidy(() => [
      tf.slice(a, [0, 0, 0], [1, 3, -1]),
      tf.slice(b, [0, 0, 0], [1, 3, -1]),
      tf.slice(a, [0, 3, 0], [1, 3, -1]),
      tf.slice(b, [0, 3, 0], [1, 3, -1]),
    ]);
    await expectTensorsClose(a3, b3, 1e-6);
    const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(aLast, bLast))));
    expect((await moved.data())[0]).toBeGreaterThan(1e-3);
    tf.dispose([a, b, a3, b3, aLast, bLast, moved]);
  });

  it('right padding with its mask leaves the real positions unchanged', async () => {
    const unpadded = logitsOf(model, [[3, 44, 21, 8, 30]], [[1, 1, 1, 1, 1]]);
    const padded = logitsOf(model, [[3, 44, 21, 8, 30, 7, 7, 7]], [[1, 1, 1, 1, 1, 0, 0, 0]]);
    const real = tf.tidy(() => tf.slice(padded, [0, 0, 0], [1, 5, -1]));
    await expectTensorsClose(real, unpadded, 1e-5);
    tf.dispose([unpadded, padded, real]);
  });

  it('trains every weight (tied table through both uses) without leaking tensors', async () => {
    const copy = gpt2FromHuggingFace(config, bytes, 'gpt2_train');
    const { ids, mask, targets } = nextTokenBatch();
    const optimizer = tf.train.sgd(0.1);
    const table = copy.getLayer(gpt2LayerNames.embeddings).weights[0];
    const before = table.read().clone();
    const step = () =>
      optimizer.minimize(
        () =>
          tf.losses.softmaxCrossEntropy(
            targets,
            copy.apply([ids, mask], { training: true }) as tf.Tensor,
          ) as tf.Scalar,
        true,
        copy.trainableWeights.map((w) => w.read() as tf.Variable),
      ) as tf.Scalar;
    tf.dispose(step());
    const count = tf.memory().numTensors;
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const loss = step();
      losses.push((await loss.data())[0]);
      loss.dispose();
      expect(tf.memory().numTensors).toBe(count);
    }
    expect(losses[2]).toBeLessThan(losses[0]);
    const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(table.read(), before))));
    expect((await moved.data())[0]).toBeGreaterThan(0);
    tf.dispose([ids, mask, targets, before, moved]);
    optimizer.dispose();
    copy.dispose();
  });

  it('has gradients equal to finite differences for wte (both uses), c_attn and ln_f', async () => {
    const { ids, mask, targets } = nextTokenBatch();
    const variable = (layer: string, index = 0) => model.getLayer(layer).weights[index].read() as tf.Variable;
    const loss = () =>
      tf.losses.softmaxCrossEntropy(targets, model.apply([ids, mask]) as tf.Tensor) as tf.Scalar;
    // Every 61st element: 28 elements of the three variables, two forward passes each.
    const result = await checkVariableGradients(
      loss,
      [
        variable(gpt2LayerNames.embeddings),
        variable(gpt2LayerNames.block(1).qkv),
        variable(gpt2LayerNames.finalLayerNorm),
      ],
      { stride: 61 },
    );
    expect(result.checked).toBe(28);
    tf.dispose([ids, mask, targets]);
  });

  it('refuses a checkpoint with a missing or misshapen tensor, naming it', () => {
    expect(() => gpt2FromHuggingFace({ ...config, n_positions: 64 }, bytes)).toThrow(
      /GPT-2 checkpoint: "transformer\.wpe\.weight" has shape \[32, 16\], expected \[64, 16\]/,
    );
    expect(() => gpt2FromHuggingFace({ ...config, n_layer: 3 }, bytes)).toThrow(
      /missing tensor "transformer\.h\.2\.ln_1\.weight"/,
    );
  });

  it('refuses unsupported configs and missing files clearly', async () => {
    expect(() => gpt2FromHuggingFace({ ...config, activation_function: 'swish' }, bytes)).toThrow(
      /activation_function "swish" is not supported/,
    );
    await expect(loadGpt2(join(FIXTURE, 'nowhere'))).rejects.toThrow(
      /nowhere\/config\.json: does not exist$/,
    );
    const sharded = new MemoryAdapterStore('memory://sharded-gpt2');
    await sharded.writeFiles(
      new Map([
        ['config.json', new Uint8Array(readFileSync(join(FIXTURE, 'config.json')))],
        ['model.safetensors.index.json', new TextEncoder().encode('{"weight_map": {}}')],
      ]),
    );
    await expect(loadGpt2(sharded)).rejects.toThrow(
      /model\.safetensors.*sharded checkpoints are not supported/,
    );
    await expect(loadGpt2(FIXTURE, { maxBytes: 1000 })).rejects.toThrow(/more than the limit of 1000/);
  });
});

describeEachBackend(
  'GPT-2 from an http:// URL',
  () => {
    let server: Server;
    let url: string;

    beforeAll(async () => {
      server = createServer((request, response) => {
        const file = join(FIXTURE, basename(request.url ?? ''));
        if (!existsSync(file)) {
          response.writeHead(404).end();
          return;
        }
        const body = readFileSync(file);
        response.writeHead(200, { 'content-length': body.byteLength }).end(body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny-gpt2/`;
    });

    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('reads config.json and model.safetensors over HTTP (bounded) and gives the same logits', async () => {
      const model = await loadGpt2(url);
      const logits = logitsOf(model, io.inputs.input_ids, io.inputs.attention_mask);
      await expectTensorsClose(logits, io.base_outputs.logits, 1e-4);
      logits.dispose();
      model.dispose();
      await expect(loadGpt2(url, { maxBytes: 1000 })).rejects.toThrow(/declares \d+ bytes, more than 1000/);
    });
  },
  { only: ['cpu'] },
);

// See build-transformer-encoder.test.ts: model.save inside jest fails on tfjs-node (typed-array realms).
describeEachBackend(
  'GPT-2 serialisation',
  () => {
    it('saves and loads as a layers model, the head tied again to the loaded wte', async () => {
      const model = gpt2FromHuggingFace(config, bytes);
      let saved: tf.io.ModelArtifacts | undefined;
      await model.save(
        tf.io.withSaveHandler(async (artifacts) => {
          saved = artifacts;
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const restored = await tfl.loadLayersModel(tf.io.fromMemory(saved as tf.io.ModelArtifacts));
      const a = logitsOf(model, io.inputs.input_ids, io.inputs.attention_mask);
      const b = logitsOf(restored, io.inputs.input_ids, io.inputs.attention_mask);
      await expectTensorsClose(b, a, 1e-6);
      expect(saved!.weightSpecs!.filter((s) => s.shape[0] === config.vocab_size)).toHaveLength(1);
      tf.dispose([a, b]);
      restored.dispose();
      model.dispose();
    });
  },
  { only: ['cpu', 'wasm', 'webgpu', 'webgl'] },
);
