import * as tf from '@tensorflow/tfjs-core';
import {
  layers,
  model as functionalModel,
  type LayersModel,
  type Shape,
  type SymbolicTensor,
} from '@tensorflow/tfjs-layers';
import type { AdapterStore } from '@tfjs-peft/core';
import {
  CheckpointWeightPlan,
  modelFromSafetensors,
  readHuggingFaceCheckpoint,
  type CheckpointReadOptions,
  type TensorSource,
} from './checkpoint';
import { buildTransformerEncoder } from '../encoder/build-transformer-encoder';
import { layerNames } from '../encoder/layer-names';
import type { TransformerEncoderConfig } from '../encoder/transformer-encoder-config';
import { asShapeList, asTensorList, type LayerArgs } from '../layers/layer-args';

/** The fields of a Hugging Face `config.json` (BertConfig) this loader reads. */
export interface HuggingFaceBertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  hidden_act?: string;
  layer_norm_eps?: number;
  type_vocab_size?: number;
  position_embedding_type?: string;
  num_labels?: number;
  id2label?: Record<string, string>;
  [field: string]: unknown;
}

/**
 * The position-0 slice of a sequence: [batch, length, dim] → [batch, dim]. BERT's pooler reads the
 * first position (the [CLS] token; with a prompt attached, the first virtual token, as in PEFT).
 */
export class FirstTokenPooling extends layers.Layer {
  static readonly className = 'FirstTokenPooling';

  constructor(args: LayerArgs = {}) {
    super(args);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [x] = asShapeList(inputShape);
    return [x[0], x[2]];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = asTensorList(inputs)[0];
      const [batch, , dim] = x.shape;
      return tf.reshape(tf.slice(x, [0, 0, 0], [batch, 1, dim]), [batch, dim]);
    });
  }
}
tf.serialization.registerClass(FirstTokenPooling);

const HIDDEN_ACTIVATIONS: Record<string, string> = {
  gelu: 'gelu',
  gelu_new: 'gelu_new',
  relu: 'relu',
  tanh: 'tanh',
};

/** The encoder config of a Hugging Face BERT (post-norm, learned absolute positions, embedding layer norm). */
export function bertEncoderConfig(config: HuggingFaceBertConfig): TransformerEncoderConfig {
  const activation = HIDDEN_ACTIVATIONS[config.hidden_act ?? 'gelu'];
  if (!activation)
    throw new Error(`BERT hidden_act "${config.hidden_act}" is not supported (gelu, gelu_new, relu, tanh)`);
  if ((config.position_embedding_type ?? 'absolute') !== 'absolute') {
    throw new Error(
      `BERT position_embedding_type "${config.position_embedding_type}" is not supported (absolute only)`,
    );
  }
  return {
    vocabSize: config.vocab_size,
    embeddingSize: config.hidden_size,
    positionEncoding: 'learned',
    maxPositions: config.max_position_embeddings,
    blocks: Array.from({ length: config.num_hidden_layers }, () => ({
      hiddenSize: config.hidden_size,
      numHeads: config.num_attention_heads,
      intermediateSize: config.intermediate_size,
      activation,
    })),
    normalization: 'post',
    layerNormEpsilon: config.layer_norm_eps ?? 1e-12,
    embeddingLayerNorm: true,
    pooling: 'none',
  };
}

function numLabels(config: HuggingFaceBertConfig): number {
  if (config.num_labels != null) return config.num_labels;
  if (config.id2label) return Object.keys(config.id2label).length;
  return 2;
}

/**
 * `BertForSequenceClassification` as a tfjs functional model: inputs `token_ids` [batch, length]
 * int32 and `attention_mask` [batch, length] float32; output the logits [batch, numLabels].
 * Layers: the encoder of `buildTransformerEncoder` (names in `layerNames`), then
 * `pooler/first_token` (FirstTokenPooling), `pooler` (Dense) + `pooler/activation` (tanh) and
 * `classifier` (Dense, linear). Weights are random until loaded (`loadBertWeights`).
 */
export function buildBertForSequenceClassification(
  config: HuggingFaceBertConfig,
  name = 'bert',
): LayersModel {
  const encoder = buildTransformerEncoder(bertEncoderConfig(config), `${name}_encoder`);
  const hidden = encoder.outputs[0] as SymbolicTensor;
  const first = new FirstTokenPooling({ name: 'pooler/first_token' }).apply(hidden) as SymbolicTensor;
  const pooled = layers
    .activation({ name: layerNames.poolerActivation, activation: 'tanh' })
    .apply(
      layers.dense({ name: layerNames.pooler, units: config.hidden_size }).apply(first),
    ) as SymbolicTensor;
  const logits = layers
    .dense({ name: layerNames.classifier, units: numLabels(config) })
    .apply(pooled) as SymbolicTensor;
  return functionalModel({ name, inputs: encoder.inputs, outputs: logits });
}

/**
 * Writes Hugging Face BERT weights (a `state_dict`, e.g. `model.safetensors`) into a model built by
 * `buildBertForSequenceClassification`. nn.Linear weights [out, in] are transposed to tfjs Dense
 * kernels [in, out]. Token type 0's embedding is added to the position table (the model has no
 * token type input: every token, virtual tokens included, is type 0, as when Hugging Face is called
 * without token_type_ids). Every expected key is checked (name and shape) before any weight is set.
 * A missing `bert.pooler`/`classifier` (a bare BertModel checkpoint) is an error: this loader is for
 * sequence classification checkpoints.
 */
export function loadBertWeights(model: LayersModel, weights: TensorSource, prefix = 'bert.'): void {
  const plan = new CheckpointWeightPlan(model, weights, 'BERT');
  const embeddings = model.getLayer(layerNames.embeddings) as unknown as {
    vocabSize: number;
    embeddingSize: number;
    maxPositions: number;
  };
  const { vocabSize, embeddingSize: dim, maxPositions } = embeddings;
  const e = `${prefix}embeddings.`;
  plan.add(layerNames.embeddings, () => {
    const typeTable = plan.tensor(`${e}token_type_embeddings.weight`, [
      weights.get(`${e}token_type_embeddings.weight`)?.shape[0] ?? 2,
      dim,
    ]);
    const positions = plan.tensor(`${e}position_embeddings.weight`, [maxPositions, dim]);
    const folded = tf.add(positions, tf.slice(typeTable, [0, 0], [1, dim]));
    return [plan.tensor(`${e}word_embeddings.weight`, [vocabSize, dim]), folded];
  });
  plan.addLayerNorm(layerNames.embeddingLayerNorm, `${e}LayerNorm`);
  for (let index = 0; model.layers.some((l) => l.name === layerNames.block(index).query); index++) {
    const names = layerNames.block(index);
    const p = `${prefix}encoder.layer.${index}.`;
    plan.addDense(names.query, `${p}attention.self.query`, 'linear');
    plan.addDense(names.key, `${p}attention.self.key`, 'linear');
    plan.addDense(names.value, `${p}attention.self.value`, 'linear');
    plan.addDense(names.attentionOutput, `${p}attention.output.dense`, 'linear');
    plan.addLayerNorm(names.attentionOutputLayerNorm, `${p}attention.output.LayerNorm`);
    plan.addDense(names.intermediate, `${p}intermediate.dense`, 'linear');
    plan.addDense(names.output, `${p}output.dense`, 'linear');
    plan.addLayerNorm(names.ffnOutputLayerNorm, `${p}output.LayerNorm`);
  }
  plan.addDense(layerNames.pooler, `${prefix}pooler.dense`, 'linear');
  plan.addDense(layerNames.classifier, 'classifier', 'linear');
  plan.write();
}

/**
 * Builds `BertForSequenceClassification` from Hugging Face files: `config.json` (parsed object) and
 * `model.safetensors` (bytes, float32). See `buildBertForSequenceClassification` for the layers.
 */
export function bertFromHuggingFace(
  config: HuggingFaceBertConfig,
  safetensors: Uint8Array,
  name = 'bert',
): LayersModel {
  return modelFromSafetensors(
    safetensors,
    () => buildBertForSequenceClassification(config, name),
    loadBertWeights,
  );
}

/**
 * Reads a Hugging Face BERT sequence-classification checkpoint (`config.json` +
 * `model.safetensors`) from a folder — a path, a `file://` or `http(s)://` URL, or an adapter store —
 * with bounded reads, and builds it (`bertFromHuggingFace`).
 */
export async function loadBert(
  source: string | AdapterStore,
  options: CheckpointReadOptions & { name?: string } = {},
): Promise<LayersModel> {
  const { config, safetensors } = await readHuggingFaceCheckpoint(source, options);
  return bertFromHuggingFace(config as HuggingFaceBertConfig, safetensors, options.name);
}
