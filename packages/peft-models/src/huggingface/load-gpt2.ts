import * as tf from '@tensorflow/tfjs-core';
import {
  layers,
  model as functionalModel,
  type LayersModel,
  type SymbolicTensor,
} from '@tensorflow/tfjs-layers';
import type { AdapterStore } from '@tfjs-peft/core';
import { buildTransformerEncoder } from '../encoder/build-transformer-encoder';
import { gpt2LayerNames } from '../encoder/layer-names';
import type { TransformerEncoderConfig } from '../encoder/transformer-encoder-config';
import { TiedEmbeddingHead } from '../layers/tied-embedding-head';
import type { TokenAndPositionEmbedding } from '../layers/token-and-position-embedding';
import {
  CheckpointWeightPlan,
  modelFromSafetensors,
  readHuggingFaceCheckpoint,
  type CheckpointReadOptions,
  type TensorSource,
} from './checkpoint';

/** The fields of a Hugging Face `config.json` (GPT2Config) this loader reads. */
export interface HuggingFaceGpt2Config {
  vocab_size: number;
  n_embd: number;
  n_layer: number;
  n_head: number;
  n_positions: number;
  /** Feed-forward width; null or absent: 4 · n_embd. */
  n_inner?: number | null;
  activation_function?: string;
  layer_norm_epsilon?: number;
  scale_attn_weights?: boolean;
  scale_attn_by_inverse_layer_idx?: boolean;
  reorder_and_upcast_attn?: boolean;
  add_cross_attention?: boolean;
  /** Default true (GPT-2's `lm_head` is `wte`). */
  tie_word_embeddings?: boolean;
  [field: string]: unknown;
}

// transformers' ACT2FN names → tfjs activations ('gelu_pytorch_tanh' is the same tanh approximation).
const ACTIVATIONS: Record<string, string> = {
  gelu_new: 'gelu_new',
  gelu_pytorch_tanh: 'gelu_new',
  gelu: 'gelu',
  relu: 'relu',
  tanh: 'tanh',
};

function positiveInteger(config: HuggingFaceGpt2Config, field: keyof HuggingFaceGpt2Config): number {
  const value = config[field];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(
      `GPT-2 config.json: "${String(field)}" must be a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * The transformer config of a Hugging Face GPT-2: learned positions, pre-norm blocks, causal
 * attention through one fused `c_attn`, gelu_new, a final `ln_f`, GPT-2's layer names.
 */
export function gpt2EncoderConfig(config: HuggingFaceGpt2Config): TransformerEncoderConfig {
  const width = positiveInteger(config, 'n_embd');
  const numHeads = positiveInteger(config, 'n_head');
  if (width % numHeads !== 0)
    throw new Error(`GPT-2 config.json: n_embd ${width} is not divisible by n_head ${numHeads}`);
  const activation = ACTIVATIONS[config.activation_function ?? 'gelu_new'];
  if (!activation) {
    throw new Error(
      `GPT-2 activation_function "${config.activation_function}" is not supported (${Object.keys(ACTIVATIONS).join(', ')})`,
    );
  }
  if (config.add_cross_attention) throw new Error('GPT-2 config.json: add_cross_attention is not supported');
  // reorder_and_upcast_attn only changes float16 numerics; in float32 the result is the same.
  const depthScale = config.scale_attn_weights === false ? 1 : 1 / Math.sqrt(width / numHeads);
  return {
    vocabSize: positiveInteger(config, 'vocab_size'),
    embeddingSize: width,
    positionEncoding: 'learned',
    maxPositions: positiveInteger(config, 'n_positions'),
    blocks: Array.from({ length: positiveInteger(config, 'n_layer') }, (_, i) => ({
      hiddenSize: width,
      numHeads,
      intermediateSize: config.n_inner ?? 4 * width,
      activation,
      attentionScale: config.scale_attn_by_inverse_layer_idx ? depthScale / (i + 1) : depthScale,
    })),
    normalization: 'pre',
    layerNormEpsilon: config.layer_norm_epsilon ?? 1e-5,
    finalLayerNorm: true,
    causal: true,
    fusedQkv: true,
    layerNaming: 'gpt2',
    pooling: 'none',
  };
}

/**
 * `GPT2LMHeadModel` as a tfjs functional model: inputs `token_ids` [batch, length] int32 and
 * `attention_mask` [batch, length] float32 (1 = token, 0 = padding; positions are 0..length−1 as
 * transformers gives them without `position_ids`, so pad on the right); output the logits
 * [batch, length, vocab_size]. Layers (`gpt2LayerNames`): `transformer/wte` (token table and
 * position table), per block `transformer/h/{i}/ln_1`, `…/attn/c_attn` (Dense, 3·n_embd),
 * `…/attn/qkv_split`, `…/attn/core` (causal), `…/attn/c_proj`, `…/ln_2`, `…/mlp/c_fc`,
 * `…/mlp/act`, `…/mlp/c_proj`; `transformer/ln_f`; `lm_head` — a `TiedEmbeddingHead` reading
 * the `wte` variable itself, or, with `tie_word_embeddings: false`, a Dense without bias.
 * Weights are random until loaded (`loadGpt2Weights`).
 */
export function buildGpt2LMHeadModel(config: HuggingFaceGpt2Config, name = 'gpt2'): LayersModel {
  const names = gpt2LayerNames;
  const transformer = buildTransformerEncoder(gpt2EncoderConfig(config), `${name}_transformer`);
  const hidden = transformer.outputs[0] as SymbolicTensor;
  const head =
    config.tie_word_embeddings === false
      ? layers.dense({ name: names.lmHead, units: config.vocab_size, useBias: false })
      : new TiedEmbeddingHead({
          name: names.lmHead,
          embedding: transformer.getLayer(names.embeddings) as unknown as TokenAndPositionEmbedding,
        });
  const logits = head.apply(hidden) as SymbolicTensor;
  return functionalModel({ name, inputs: transformer.inputs, outputs: logits });
}

/**
 * Writes Hugging Face GPT-2 weights (a `state_dict`, e.g. `model.safetensors`, with or without the
 * `transformer.` prefix) into a model built by `buildGpt2LMHeadModel`. GPT-2's Conv1D weights are
 * stored [in, out], the tfjs Dense kernel layout, so they are copied as they are; an untied
 * `lm_head.weight` (nn.Linear, [vocab, n_embd]) is transposed. Every expected key is checked (name
 * and shape) before any weight is set; buffers such as `h.{i}.attn.bias` are ignored.
 */
export function loadGpt2Weights(model: LayersModel, weights: TensorSource): void {
  const names = gpt2LayerNames;
  const plan = new CheckpointWeightPlan(model, weights, 'GPT-2');
  const prefix = weights.has('wte.weight') && !weights.has('transformer.wte.weight') ? '' : 'transformer.';
  const embeddings = model.getLayer(names.embeddings) as unknown as TokenAndPositionEmbedding;
  const { vocabSize, embeddingSize: dim, maxPositions } = embeddings;
  plan.add(names.embeddings, () => [
    plan.tensor(`${prefix}wte.weight`, [vocabSize, dim]),
    plan.tensor(`${prefix}wpe.weight`, [maxPositions, dim]),
  ]);
  for (let i = 0; model.layers.some((l) => l.name === names.block(i).qkv); i++) {
    const block = names.block(i);
    const p = `${prefix}h.${i}.`;
    plan.addLayerNorm(block.attentionLayerNorm, `${p}ln_1`);
    plan.addDense(block.qkv, `${p}attn.c_attn`, 'conv1d');
    plan.addDense(block.attentionOutput, `${p}attn.c_proj`, 'conv1d');
    plan.addLayerNorm(block.ffnLayerNorm, `${p}ln_2`);
    plan.addDense(block.intermediate, `${p}mlp.c_fc`, 'conv1d');
    plan.addDense(block.output, `${p}mlp.c_proj`, 'conv1d');
  }
  plan.addLayerNorm(names.finalLayerNorm, `${prefix}ln_f`);
  if (model.getLayer(names.lmHead).getClassName() === 'Dense') {
    plan.add(names.lmHead, () => [tf.transpose(plan.tensor('lm_head.weight', [vocabSize, dim]))]);
  }
  plan.write();
}

/**
 * Builds `GPT2LMHeadModel` from Hugging Face files: `config.json` (parsed object) and
 * `model.safetensors` (bytes; F32, F16 or BF16). See `buildGpt2LMHeadModel` for the layers.
 */
export function gpt2FromHuggingFace(
  config: HuggingFaceGpt2Config,
  safetensors: Uint8Array,
  name = 'gpt2',
): LayersModel {
  return modelFromSafetensors(safetensors, () => buildGpt2LMHeadModel(config, name), loadGpt2Weights);
}

/**
 * Reads a Hugging Face GPT-2 checkpoint (`config.json` + `model.safetensors`) from a folder — a
 * path, a `file://` or `http(s)://` URL, or an adapter store — with bounded reads, and builds it
 * (`gpt2FromHuggingFace`).
 */
export async function loadGpt2(
  source: string | AdapterStore,
  options: CheckpointReadOptions & { name?: string } = {},
): Promise<LayersModel> {
  const { config, safetensors } = await readHuggingFaceCheckpoint(source, options);
  return gpt2FromHuggingFace(config as HuggingFaceGpt2Config, safetensors, options.name);
}
