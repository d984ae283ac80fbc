import * as tf from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import {
  universalSentenceEncoderLiteFromArtifacts,
  type UniversalSentenceEncoderLite,
} from '../use-lite/load-universal-sentence-encoder-lite';
import sentences from './fixtures/parity-sentences.json';
import { describeEachBackend } from '@tfjs-peft/test-utils';
import {
  embedWithGraphModel,
  loadUseLiteGraphModel,
  readUseLiteArtifacts,
  useWasmBackend,
} from './support/use-lite-files';

const TOLERANCE = 1e-4;
const BATCH = 16;

/**
 * The GraphModel reads shapes synchronously (dataSync), which the webgpu backend cannot do in
 * Node (no OffscreenCanvas): there the reference embeddings are computed on wasm.
 */
async function graphEmbeddings(
  graph: GraphModel,
  use: UniversalSentenceEncoderLite,
  batch: string[],
  backend: string,
): Promise<tf.Tensor2D> {
  if (backend !== 'webgpu') return embedWithGraphModel(graph, use.tokenizer, batch);
  await useWasmBackend();
  try {
    const onWasm = await embedWithGraphModel(graph, use.tokenizer, batch);
    const values = await onWasm.data();
    const shape = onWasm.shape;
    onWasm.dispose();
    await tf.setBackend(backend);
    return tf.tensor2d(values as Float32Array, shape);
  } finally {
    if (tf.getBackend() !== backend) await tf.setBackend(backend);
  }
}

async function maxAbsDifference(
  use: UniversalSentenceEncoderLite,
  graph: GraphModel,
  texts: string[],
  backend: string,
): Promise<number> {
  let worst = 0;
  for (let start = 0; start < texts.length; start += BATCH) {
    const batch = texts.slice(start, start + BATCH);
    const expected = await graphEmbeddings(graph, use, batch, backend);
    const { tokenIds, attentionMask } = use.tokenizer.encode(batch);
    const actual = use.model.predict([tokenIds, attentionMask]) as tf.Tensor2D;
    expect(actual.shape).toEqual(expected.shape);
    const difference = tf.tidy(() => tf.max(tf.abs(tf.sub(actual, expected))));
    worst = Math.max(worst, (await difference.data())[0]);
    tf.dispose([expected, tokenIds, attentionMask, actual, difference]);
  }
  return worst;
}

describeEachBackend('USE-lite layers model vs the GraphModel', (backend) => {
  // cpu runs the 7M-parameter graph at about a second a sentence, and webgpu in Node (software GL,
  // a new shader per sequence length) took 4 minutes for all 112: a varied subset there, unless
  // TFJS_PEFT_FULL_PARITY=1.
  const stride =
    process.env.TFJS_PEFT_FULL_PARITY === '1'
      ? 1
      : (({ cpu: 11, webgpu: 3 } as Record<string, number>)[backend] ?? 1);
  const texts = sentences.filter((_, i) => i % stride === 0);
  let use: UniversalSentenceEncoderLite;
  let graph: GraphModel;

  beforeAll(async () => {
    use = universalSentenceEncoderLiteFromArtifacts(readUseLiteArtifacts());
    graph = await loadUseLiteGraphModel();
  });

  afterAll(() => {
    use?.model.dispose();
    graph?.dispose();
  });

  it(`gives the same sentence embeddings (max abs diff <= ${TOLERANCE})`, async () => {
    const worst = await maxAbsDifference(use, graph, texts, backend);
    console.log(`[parity] ${backend}: ${texts.length} sentences, max abs diff ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOLERANCE);
  }, 600_000);
});
