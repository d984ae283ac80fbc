import * as tf from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import {
  universalSentenceEncoderLiteFromArtifacts,
  type UniversalSentenceEncoderLite,
} from '../use-lite/load-universal-sentence-encoder-lite';
import sentences from './fixtures/parity-sentences.json';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
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
  // Every sentence on every backend (issue #7 asks for >= 100 on each). cpu runs the 7M-parameter
  // model at about a second a sentence and webgpu in Node (software GL, a new shader per sequence
  // length) took about 4 minutes for all 112 here; TFJS_PEFT_PARITY_STRIDE=k keeps every k-th
  // sentence for a quicker local run.
  const stride = Math.max(1, Number(process.env.TFJS_PEFT_PARITY_STRIDE ?? 1) || 1);
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
    if (stride === 1) expect(texts.length).toBeGreaterThanOrEqual(100);
    const worst = await maxAbsDifference(use, graph, texts, backend);
    console.log(`[parity] ${backend}: ${texts.length} sentences, max abs diff ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOLERANCE);
  }, 600_000);

  it('padding does not change a sentence embedding', async () => {
    const texts = ['How old are you?', 'A quick brown fox jumps over the lazy dog.'];
    const natural = use.tokenizer.encode(texts);
    const padded = use.tokenizer.encode(texts, 40);
    expect(natural.tokenIds.shape[1]).toBeLessThan(40);
    const a = use.model.predict([natural.tokenIds, natural.attentionMask]) as tf.Tensor;
    const b = use.model.predict([padded.tokenIds, padded.attentionMask]) as tf.Tensor;
    await expectTensorsClose(b, a, 1e-5);
    tf.dispose([natural.tokenIds, natural.attentionMask, padded.tokenIds, padded.attentionMask, a, b]);
  });

  it('tells similar sentences from unrelated ones', async () => {
    const { tokenIds, attentionMask } = use.tokenizer.encode([
      'How old are you?',
      'What is your age?',
      'The stock market fell today.',
    ]);
    const embeddings = use.model.predict([tokenIds, attentionMask]) as tf.Tensor2D;
    const similarity = tf.tidy(() => tf.matMul(embeddings, embeddings, false, true));
    const s = (await similarity.array()) as number[][];
    expect(s[0][1]).toBeGreaterThan(0.8);
    expect(s[0][2]).toBeLessThan(0.4);
    tf.dispose([tokenIds, attentionMask, embeddings, similarity]);
  });
});
