import {
  input,
  layers,
  model as functionalModel,
  type LayersModel,
  type SymbolicTensor,
} from '@tensorflow/tfjs-layers';
import '../layers/gelu-new-alias';
import { L2Normalize } from '../layers/l2-normalize';
import { LayerNorm } from '../layers/layer-norm';
import { MaskedMeanPooling } from '../layers/masked-mean-pooling';
import { MultiHeadAttentionCore } from '../layers/multi-head-attention-core';
import { SplitLastAxis } from '../layers/split-last-axis';
import { TokenAndPositionEmbedding } from '../layers/token-and-position-embedding';
import { layerNamesFor } from './layer-names';
import type { TransformerBlockConfig, TransformerEncoderConfig } from './transformer-encoder-config';

export const inputNames = { tokenIds: 'token_ids', attentionMask: 'attention_mask' } as const;

type ActivationIdentifier = Parameters<typeof layers.activation>[0]['activation'];

function dense(name: string, units: number): ReturnType<typeof layers.dense> {
  // Linear on purpose: activations are separate layers, so a wrapper around a Dense (LoRA)
  // never has to reason about a fused activation.
  return layers.dense({ name, units, useBias: true, kernelInitializer: 'glorotUniform' });
}

function apply(
  layer: { apply: (x: SymbolicTensor | SymbolicTensor[]) => unknown },
  x: SymbolicTensor | SymbolicTensor[],
): SymbolicTensor {
  return layer.apply(x) as SymbolicTensor;
}

function transformerBlock(
  x: SymbolicTensor,
  mask: SymbolicTensor,
  inputWidth: number,
  block: TransformerBlockConfig,
  index: number,
  config: TransformerEncoderConfig,
): SymbolicTensor {
  const names = layerNamesFor(config.layerNaming).block(index);
  const epsilon = config.layerNormEpsilon;
  const pre = config.normalization === 'pre';
  const attentionSize = block.attentionSize ?? inputWidth;

  // Attention sub-layer.
  const attentionInput = pre ? apply(new LayerNorm({ name: names.attentionLayerNorm, epsilon }), x) : x;
  let query: SymbolicTensor, key: SymbolicTensor, value: SymbolicTensor;
  if (config.fusedQkv) {
    const qkv = apply(dense(names.qkv, 3 * attentionSize), attentionInput);
    [query, key, value] = new SplitLastAxis({ name: names.qkvSplit, numSplits: 3 }).apply(
      qkv,
    ) as SymbolicTensor[];
  } else {
    query = apply(dense(names.query, attentionSize), attentionInput);
    key = apply(dense(names.key, attentionSize), attentionInput);
    value = apply(dense(names.value, attentionSize), attentionInput);
  }
  const core = new MultiHeadAttentionCore({
    name: names.attentionCore,
    numHeads: block.numHeads,
    scale: block.attentionScale,
    causal: config.causal ?? false,
  });
  let attention = apply(
    dense(names.attentionOutput, block.hiddenSize),
    apply(core, [query, key, value, mask]),
  );
  if (config.dropout)
    attention = apply(layers.dropout({ name: names.attentionDropout, rate: config.dropout }), attention);
  const residual =
    inputWidth === block.hiddenSize ? x : apply(dense(names.residualProjection, block.hiddenSize), x);
  let h = apply(layers.add({ name: names.attentionResidual }), [residual, attention]);
  if (!pre) h = apply(new LayerNorm({ name: names.attentionOutputLayerNorm, epsilon }), h);

  // Feed-forward sub-layer.
  const ffnInput = pre ? apply(new LayerNorm({ name: names.ffnLayerNorm, epsilon }), h) : h;
  const intermediate = apply(dense(names.intermediate, block.intermediateSize), ffnInput);
  const activated = apply(
    layers.activation({
      name: names.activation,
      activation: (block.activation ?? 'relu') as ActivationIdentifier,
    }),
    intermediate,
  );
  let ffn = apply(dense(names.output, block.hiddenSize), activated);
  if (config.dropout) ffn = apply(layers.dropout({ name: names.ffnDropout, rate: config.dropout }), ffn);
  let out = apply(layers.add({ name: names.ffnResidual }), [h, ffn]);
  if (!pre) out = apply(new LayerNorm({ name: names.ffnOutputLayerNorm, epsilon }), out);
  return out;
}

/**
 * Builds a transformer encoder as a functional `tf.LayersModel` from the package's layers.
 * Inputs: `token_ids` [batch, length] int32 and `attention_mask` [batch, length] float32
 * (1 = token, 0 = padding). Output: [batch, width] when pooled, else [batch, length, width].
 * Layer names: see `layerNames` (or `gpt2LayerNames` with `layerNaming: 'gpt2'`).
 */
export function buildTransformerEncoder(
  config: TransformerEncoderConfig,
  name = 'transformer_encoder',
): LayersModel {
  const layerNames = layerNamesFor(config.layerNaming);
  const tokenIds = input({ name: inputNames.tokenIds, shape: [null], dtype: 'int32' });
  const mask = input({ name: inputNames.attentionMask, shape: [null], dtype: 'float32' });
  let x = apply(
    new TokenAndPositionEmbedding({
      name: layerNames.embeddings,
      vocabSize: config.vocabSize,
      embeddingSize: config.embeddingSize,
      positionEncoding: config.positionEncoding,
      maxPositions: config.maxPositions,
      tokenScale: config.tokenScale,
    }),
    tokenIds,
  );
  if (config.embeddingLayerNorm) {
    x = apply(new LayerNorm({ name: layerNames.embeddingLayerNorm, epsilon: config.layerNormEpsilon }), x);
  }
  let width = config.embeddingSize;
  config.blocks.forEach((block, index) => {
    x = transformerBlock(x, mask, width, block, index, config);
    width = block.hiddenSize;
  });
  if (config.finalLayerNorm) {
    x = apply(new LayerNorm({ name: layerNames.finalLayerNorm, epsilon: config.layerNormEpsilon }), x);
  }
  if (config.pooling === 'mean') {
    x = apply(new MaskedMeanPooling({ name: layerNames.pooling }), [x, mask]);
  }
  if (config.pooler) {
    x = apply(dense(layerNames.pooler, config.pooler.units), x);
    x = apply(
      layers.activation({
        name: layerNames.poolerActivation,
        activation: config.pooler.activation as ActivationIdentifier,
      }),
      x,
    );
  }
  if (config.l2Normalize) {
    x = apply(new L2Normalize({ name: layerNames.l2Normalize }), x);
  }
  return functionalModel({ name, inputs: [tokenIds, mask], outputs: x });
}
