import * as tf from '@tensorflow/tfjs-core';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import { universalSentenceEncoderLiteFromArtifacts, type UniversalSentenceEncoderLite } from '../use-lite/load-universal-sentence-encoder-lite';
import sentences from './fixtures/parity-sentences.json';
import { useCpuBackend, useWasmBackend } from './support/wasm-backend';
import { embedWithGraphModel, loadUseLiteGraphModel, readUseLiteArtifacts } from './support/use-lite-files';

const TOLERANCE = 1e-4;
const BATCH = 16;

async function maxAbsDifference(use: UniversalSentenceEncoderLite, graph: GraphModel, texts: string[]): Promise<number> {
  let worst = 0;
  for (let start = 0; start < texts.length; start += BATCH) {
    const batch = texts.slice(start, start + BATCH);
    const expected = await embedWithGraphModel(graph, use.tokenizer, batch);
    const { tokenIds, attentionMask } = use.tokenizer.encode(batch);
    const actual = use.model.predict([tokenIds, attentionMask]) as tf.Tensor2D;
    expect(actual.shape).toEqual(expected.shape);
    const difference = tf.max(tf.abs(tf.sub(actual, expected)));
    worst = Math.max(worst, (await difference.data())[0]);
    tf.dispose([expected, tokenIds, attentionMask, actual, difference]);
  }
  return worst;
}

const backends: Array<[string, () => Promise<void>, string[]]> = [
  ['wasm', useWasmBackend, sentences],
  // cpu runs the 7M-parameter graph at ~1 s a sentence: a varied subset.
  ['cpu', useCpuBackend, sentences.filter((_, i) => i % 11 === 0)],
];

describe.each(backends)('USE-lite layers model vs GraphModel on %s', (backend, setUp, texts) => {
  let use: UniversalSentenceEncoderLite;
  let graph: GraphModel;

  beforeAll(async () => {
    await setUp();
    use = universalSentenceEncoderLiteFromArtifacts(readUseLiteArtifacts());
    graph = await loadUseLiteGraphModel();
  });

  afterAll(() => {
    use?.model.dispose();
    graph?.dispose();
  });

  it(`matches on ${texts.length} sentences (max abs diff <= ${TOLERANCE})`, async () => {
    const worst = await maxAbsDifference(use, graph, texts);
    console.log(`[parity] ${backend}: ${texts.length} sentences, max abs diff ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOLERANCE);
  });
});
