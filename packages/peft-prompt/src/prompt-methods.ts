import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  AdapterMismatchError,
  collectLayers,
  PeftConfigError,
  PeftError,
  rebuildModel,
  registerPeftMethod,
  type PeftMethod,
  type PeftModel,
} from '@tfjs-peft/core';
import {
  PrefixTuningConfig,
  PromptEncoderConfig,
  PromptTuningConfig,
  type PromptLearningConfig,
  type PromptTokenizer,
} from './prompt-config';
import { NoAttentionLayerError, NoEmbeddingLayerError, TokenDimMismatchError } from './prompt-errors';
import { PromptAttentionMask, PromptEmbedding, PromptOwnerLayer, PROMPT_MODULE, PROMPT_STATE_KEY } from './prompt-embedding';
import { PrefixAttention, PrefixPositionOffset } from './prefix-attention';
import { lstmEncoder, mlpEncoder, PromptParameters } from './prompt-parameters';
import { promptFileKeys } from './peft-format';

type Layer = tfl.layers.Layer;
type SymbolicTensor = tfl.SymbolicTensor;

const EMBEDDING_CLASSES = ['Embedding', 'TokenAndPositionEmbedding'];
/** Names of a model input treated as the attention mask (extended with ones for the virtual tokens). */
export const ATTENTION_MASK_INPUT_NAMES = ['attention_mask'];

interface EmbeddingInfo {
  layer: Layer;
  /** Wrap (TokenAndPositionEmbedding) or insert after (tf.layers.embedding). */
  wrap: boolean;
  width: number;
  vocabSize: number;
  /** Token embeddings of ids as the model computes them before positions: [ids.length, width]. */
  embed(ids: tf.Tensor1D): tf.Tensor2D;
}

function isFedByInput(layer: Layer): boolean {
  const node = layer.inboundNodes[0];
  return !!node && node.inboundLayers.length === 1 && node.inboundLayers[0].getClassName() === 'InputLayer';
}

function embeddingInfo(model: tfl.LayersModel): EmbeddingInfo {
  const candidates = collectLayers(model).filter(
    (l) => EMBEDDING_CLASSES.includes(l.getClassName()) && isFedByInput(l),
  );
  if (candidates.length === 0) {
    const summary = collectLayers(model)
      .slice(0, 12)
      .map((l) => `${l.name} (${l.getClassName()})`)
      .join(', ');
    throw new NoEmbeddingLayerError(model.name, summary);
  }
  const layer = candidates.find((l) => l.name === 'embeddings') ?? candidates[0];
  const table = () => {
    const w = layer.weights.find((v) => /(^|\/)embeddings(_\d+)?$/.test(v.originalName)) ?? layer.weights[0];
    return w.read() as tf.Tensor2D;
  };
  if (layer.getClassName() === 'Embedding') {
    const config = layer.getConfig() as { outputDim: number; inputDim: number };
    return {
      layer,
      wrap: false,
      width: config.outputDim,
      vocabSize: config.inputDim,
      embed: (ids) => tf.gather(table(), ids) as tf.Tensor2D,
    };
  }
  const tpe = layer as unknown as { embeddingSize: number; vocabSize: number; tokenScale: number };
  return {
    layer,
    wrap: true,
    width: tpe.embeddingSize,
    vocabSize: tpe.vocabSize,
    embed: (ids) =>
      tf.tidy(() => {
        const rows = tf.gather(table(), ids) as tf.Tensor2D;
        return tpe.tokenScale === 1 ? rows : (tf.mul(rows, tpe.tokenScale) as tf.Tensor2D);
      }),
  };
}

function attentionCores(model: tfl.LayersModel): Layer[] {
  return collectLayers(model).filter((l) => l.getClassName() === 'MultiHeadAttentionCore');
}

function inputWidth(layer: Layer, index: number): number {
  const shapes = layer.inboundNodes[0].inputShapes as tfl.Shape[];
  return shapes[index][shapes[index].length - 1] as number;
}

/** Fills token_dim / num_layers / num_attention_heads from the model, or checks them (PEFT fills them too). */
function settle(
  config: PromptLearningConfig,
  field: 'tokenDim' | 'numLayers' | 'numAttentionHeads',
  value: number,
  where: string,
): void {
  const json = { tokenDim: 'token_dim', numLayers: 'num_layers', numAttentionHeads: 'num_attention_heads' }[
    field
  ];
  if (config[field] == null) config[field] = value;
  else if (config[field] !== value) throw new TokenDimMismatchError(json, config[field]!, value, where);
}

function describeAttention(model: tfl.LayersModel, config: PromptLearningConfig): void {
  const cores = attentionCores(model);
  if (cores.length === 0) return;
  if (config.numLayers == null) config.numLayers = cores.length;
  if (config.numAttentionHeads == null)
    config.numAttentionHeads = (cores[0] as unknown as { numHeads: number }).numHeads;
}

function tokenIds(tokenizer: PromptTokenizer, text: string): number[] {
  const out = typeof tokenizer === 'function' ? tokenizer(text) : tokenizer.encode(text);
  const ids = Array.isArray(out) ? out : (out as { ids: readonly number[] }).ids;
  return [...ids];
}

/** PEFT's TEXT init: the tokenised text, cut to n tokens or repeated until n. */
export function initTokenIds(ids: readonly number[], n: number): number[] {
  if (ids.length === 0) throw new PeftConfigError('promptTuningInitText', ids, 'tokenises to no tokens');
  const out: number[] = [];
  while (out.length < n) out.push(...ids);
  return out.slice(0, n);
}

function initialValues(config: PromptLearningConfig, info: EmbeddingInfo): tf.Tensor2D {
  const n = config.numVirtualTokens;
  if (config instanceof PromptTuningConfig && config.promptTuningInit !== 'random') {
    let ids: number[];
    if (config.promptTuningInit === 'text') {
      ids = initTokenIds(tokenIds(config.tokenizer!, config.promptTuningInitText!), n);
      const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= info.vocabSize);
      if (bad !== undefined)
        throw new PeftConfigError('tokenizer', bad, `produced a token id outside [0, ${info.vocabSize})`);
    } else {
      ids = Array.from({ length: n }, () => Math.floor(Math.random() * info.vocabSize));
    }
    return tf.tidy(() => info.embed(tf.tensor1d(ids, 'int32')));
  }
  // PEFT's RANDOM init: torch.nn.Embedding's N(0, 1).
  return tf.randomNormal([n, info.width]) as tf.Tensor2D;
}

function buildParameters(
  owner: PromptOwnerLayer,
  config: PromptLearningConfig,
  adapterName: string,
  width: number,
  init: () => tf.Tensor2D,
): PromptParameters {
  const create = owner.variableFactory;
  const n = config.numVirtualTokens;
  const created: tfl.LayerVariable[] = [];
  if (loadingFromFile.delete(config)) {
    // Loading: the file holds the prompt itself (PEFT saves the encoder's output), so the adapter is
    // a plain table filled from the file — no encoder and no initial values are built (PEFT's
    // inference_mode builds no encoder either). Its size was checked against the file's.
    if (config instanceof PromptEncoderConfig || config instanceof PrefixTuningConfig)
      config.encoderHiddenSize ??= config.tokenDim;
    const embedding = create(`prompt_embeddings_${adapterName}`, [n, width], tfl.initializers.zeros());
    return new PromptParameters(embedding, null, width);
  }
  try {
    if (config instanceof PromptEncoderConfig) {
      const dim = config.tokenDim!;
      const hidden = config.encoderHiddenSize ?? dim;
      config.encoderHiddenSize = hidden;
      const embedding = create(
        `prompt_embeddings_${adapterName}`,
        [n, dim],
        tfl.initializers.randomNormal({ mean: 0, stddev: 1 }),
      );
      created.push(embedding);
      const encoder =
        config.encoderReparameterizationType === 'MLP'
          ? mlpEncoder(create, `mlp_head_${adapterName}`, [dim, hidden, hidden, width], 'relu')
          : lstmEncoder(create, `lstm_head_${adapterName}`, dim, hidden, config.encoderNumLayers, width);
      return new PromptParameters(embedding, encoder, width);
    }
    if (config instanceof PrefixTuningConfig && config.prefixProjection) {
      const dim = config.tokenDim!;
      const hidden = config.encoderHiddenSize ?? dim;
      config.encoderHiddenSize = hidden;
      const embedding = create(
        `prefix_embeddings_${adapterName}`,
        [n, dim],
        tfl.initializers.randomNormal({ mean: 0, stddev: 1 }),
      );
      created.push(embedding);
      const encoder = mlpEncoder(create, `prefix_transform_${adapterName}`, [dim, hidden, width], 'tanh');
      created.push(...encoder.variables());
      // PEFT's init_weights 'zero': the MLP's last layer zero, so the prefix starts at zero.
      if (config.initWeights === 'zero') encoder.variables().slice(-2).forEach(zeroVariable);
      return new PromptParameters(embedding, encoder, width);
    }
    const values = init();
    const embedding = create(`prompt_embeddings_${adapterName}`, [n, width], tfl.initializers.zeros());
    embedding.write(values);
    values.dispose();
    return new PromptParameters(embedding, null, width);
  } catch (error) {
    created.forEach((v) => v.dispose());
    throw error;
  }
}

function zeroVariable(v: tfl.LayerVariable): void {
  const zeros = tf.zeros(v.shape as number[]);
  v.write(zeros);
  zeros.dispose();
}

/** Drops PEFT's automatic SEQ_CLS heads ('classifier', 'score') that this model does not have. */
function keepPresentHeads(model: tfl.LayersModel, config: PromptLearningConfig): void {
  if (config.taskType !== 'SEQ_CLS' || !config.modulesToSave) return;
  const names = new Set(collectLayers(model).map((l) => l.name));
  const kept = config.modulesToSave.filter((m) => names.has(m) || !['classifier', 'score'].includes(m));
  (config as { modulesToSave: string[] | null }).modulesToSave = kept.length ? kept : null;
}

function uniqueName(model: tfl.LayersModel, wanted: string): string {
  const taken = new Set(collectLayers(model).map((l) => l.name));
  let name = wanted;
  for (let i = 2; taken.has(name); i++) name = `${wanted}_${i}`;
  return name;
}

/** Prompt tuning and P-tuning: virtual tokens after the embedding layer, the attention mask extended. */
function injectVirtualTokens(
  model: tfl.LayersModel,
  config: PromptLearningConfig,
  adapterName: string,
): tfl.LayersModel {
  keepPresentHeads(model, config);
  const existing = collectLayers(model).find((l): l is PromptEmbedding => l instanceof PromptEmbedding);
  if (existing) {
    settle(config, 'tokenDim', existing.width, `the prompt layer "${existing.name}"`);
    describeAttention(model, config);
    const info = embeddingInfoOf(existing);
    existing.addPrompt(
      adapterName,
      buildParameters(existing, config, adapterName, existing.width, () => initialValues(config, info)),
    );
    return model;
  }
  const info = embeddingInfo(model);
  settle(config, 'tokenDim', info.width, `embedding layer "${info.layer.name}"`);
  describeAttention(model, config);
  const prompt = new PromptEmbedding({
    name: uniqueName(model, `${info.layer.name}/prompt`),
    peftType: config.peftType,
    embeddingLayer: info.layer,
    wrap: info.wrap,
    width: info.width,
  });
  embeddingInfos.set(prompt, info);
  prompt.addPrompt(
    adapterName,
    buildParameters(prompt, config, adapterName, info.width, () => initialValues(config, info)),
  );
  const maskInput = model.inputs.find((t) => ATTENTION_MASK_INPUT_NAMES.includes(t.sourceLayer.name)) ?? null;
  const maskLayer = maskInput
    ? new PromptAttentionMask({ name: uniqueName(model, `${maskInput.sourceLayer.name}/prompt`) }, prompt)
    : null;
  let extendedMask: SymbolicTensor | null = null;
  try {
    return rebuildModel(model, (layer, inputs, callArgs) => {
      if (layer === info.layer) {
        if (info.wrap) return prompt.apply(inputs, callArgs) as SymbolicTensor;
        return prompt.apply(layer.apply(inputs, callArgs) as SymbolicTensor) as SymbolicTensor;
      }
      if (!maskInput || !maskLayer) return undefined;
      const list = Array.isArray(inputs) ? inputs : [inputs];
      if (!list.includes(maskInput)) return undefined;
      extendedMask ??= maskLayer.apply(maskInput) as SymbolicTensor;
      const replaced = list.map((t) => (t === maskInput ? extendedMask! : t));
      return layer.apply(Array.isArray(inputs) ? replaced : replaced[0], callArgs) as SymbolicTensor;
    });
  } catch (error) {
    prompt.disposeWeights();
    throw error;
  }
}

const embeddingInfos = new WeakMap<PromptEmbedding, EmbeddingInfo>();
function embeddingInfoOf(layer: PromptEmbedding): EmbeddingInfo {
  const info = embeddingInfos.get(layer);
  if (!info) throw new PeftError(`Prompt layer "${layer.name}" was not created by this package`);
  return info;
}

/** Widths per layer: `layerTokenDims` filled from the model when they differ, or checked; `tokenDim` is layer 0's. */
function settleWidths(config: PrefixTuningConfig, widths: readonly number[], where: (i: number) => string): void {
  settle(config, 'tokenDim', widths[0], where(0));
  const uniform = widths.every((w) => w === widths[0]);
  const given = config.layerTokenDims;
  if (given == null) {
    if (!uniform) config.layerTokenDims = [...widths];
    return;
  }
  if (given.length !== widths.length)
    throw new TokenDimMismatchError('tfjs_peft_layer_token_dims (length)', given.length, widths.length, 'the model (attention layers)');
  given.forEach((w, i) => {
    if (w !== widths[i]) throw new TokenDimMismatchError(`tfjs_peft_layer_token_dims[${i}]`, w, widths[i], where(i));
  });
  if (uniform) config.layerTokenDims = null;
}

/** PEFT's prefix without projection: torch.nn.Embedding's N(0, 1), or zeros with init_weights 'zero'. */
function initialPrefix(config: PrefixTuningConfig, width: number): tf.Tensor2D {
  const shape: [number, number] = [config.numVirtualTokens, width];
  return config.initWeights === 'zero' ? tf.zeros(shape) : tf.randomNormal(shape);
}

/**
 * The position-embedding layer whose positions follow the prefix: a @tfjs-peft/models
 * `TokenAndPositionEmbedding` fed by a model input (the one named `embeddings` if several), or null.
 */
function positionEmbedding(model: tfl.LayersModel): Layer | null {
  const candidates = collectLayers(model).filter(
    (l) => l.getClassName() === 'TokenAndPositionEmbedding' && isFedByInput(l),
  );
  return candidates.find((l) => l.name === 'embeddings') ?? candidates[0] ?? null;
}

function injectPrefix(
  model: tfl.LayersModel,
  config: PrefixTuningConfig,
  adapterName: string,
): tfl.LayersModel {
  keepPresentHeads(model, config);
  const existing = collectLayers(model)
    .filter((l): l is PrefixAttention => l instanceof PrefixAttention)
    .sort((a, b) => a.layerIndex - b.layerIndex);
  if (existing.length) {
    const owner = existing[0];
    settleWidths(
      config,
      existing.map((l) => l.width),
      (i) => `attention layer "${existing[i].baseLayer.name}"`,
    );
    settle(config, 'numLayers', existing.length, 'the model (attention layers)');
    if (config.numAttentionHeads == null)
      config.numAttentionHeads = (owner.baseLayer as unknown as { numHeads: number }).numHeads;
    const total = existing.reduce((sum, l) => sum + 2 * l.width, 0);
    const parameters = buildParameters(owner, config, adapterName, total, () => initialPrefix(config, total));
    existing.forEach((l) => l.addPrompt(adapterName, parameters));
    return model;
  }
  const cores = attentionCores(model);
  if (cores.length === 0) throw new NoAttentionLayerError(model.name);
  // Each layer's prefix has its own key width; values must match it (keys and values share a row).
  const widths = cores.map((core) => {
    const width = inputWidth(core, 1);
    if (inputWidth(core, 2) !== width)
      throw new TokenDimMismatchError('token_dim', width, inputWidth(core, 2), `attention layer "${core.name}" (value width)`);
    return width;
  });
  settleWidths(config, widths, (i) => `attention layer "${cores[i].name}" (key width)`);
  settle(config, 'numLayers', cores.length, 'the model (attention layers)');
  settle(
    config,
    'numAttentionHeads',
    (cores[0] as unknown as { numHeads: number }).numHeads,
    `attention layer "${cores[0].name}"`,
  );
  let owner: PrefixAttention | null = null;
  const wrappers = new Map<Layer, PrefixAttention>();
  let offset = 0;
  cores.forEach((core, i) => {
    const wrapper = new PrefixAttention(
      { name: uniqueName(model, `${core.name}/prefix`), core, layerIndex: i, width: widths[i], offset },
      owner,
    );
    offset += 2 * widths[i];
    owner ??= wrapper;
    wrappers.set(core, wrapper);
  });
  const prefixWidth = offset;
  const parameters = buildParameters(
    owner!,
    config,
    adapterName,
    prefixWidth,
    () => initialPrefix(config, prefixWidth),
  );
  wrappers.forEach((w) => w.addPrompt(adapterName, parameters));
  // The real tokens after the prefix: positions n.. (see PrefixPositionOffset). Models without a
  // TokenAndPositionEmbedding fed by an input (a user's own embedding) keep their positions.
  const positions = positionEmbedding(model);
  const shifter = positions
    ? new PrefixPositionOffset({ name: uniqueName(model, `${positions.name}/prefix_positions`), embedding: positions }, owner!)
    : null;
  try {
    return rebuildModel(model, (layer, inputs, callArgs) => {
      if (shifter && layer === positions) return shifter.apply(inputs, callArgs) as SymbolicTensor;
      const wrapper = wrappers.get(layer);
      return wrapper ? (wrapper.apply(inputs) as SymbolicTensor) : undefined;
    });
  } catch (error) {
    owner!.disposeWeights();
    throw error;
  }
}

/** Configs checked against a file by checkConfigAgainstFile: their inject builds a plain table to load into. */
const loadingFromFile = new WeakSet<PromptLearningConfig>();

/** Width of a virtual token for prompt tuning / P-tuning on this model (the embedding's). */
function virtualTokenWidth(model: tfl.LayersModel): number {
  const existing = collectLayers(model).find((l): l is PromptEmbedding => l instanceof PromptEmbedding);
  return existing ? existing.width : embeddingInfo(model).width;
}

/** Width of a prefix row on this model: Σ 2·widthᵢ over its attention layers. */
function prefixRowWidth(model: tfl.LayersModel): number {
  const existing = collectLayers(model).filter((l): l is PrefixAttention => l instanceof PrefixAttention);
  if (existing.length) return existing.reduce((sum, l) => sum + 2 * l.width, 0);
  const cores = attentionCores(model);
  if (cores.length === 0) throw new NoAttentionLayerError(model.name);
  return cores.reduce((sum, core) => sum + 2 * inputWidth(core, 1), 0);
}

/**
 * Before anything is allocated: the file must hold `prompt_embeddings` [num_virtual_tokens, width]
 * with the model's width, so that neither `num_virtual_tokens` nor the model makes the loader create
 * a larger table than the file holds. The adapter is then loaded as that plain table: no encoder
 * (P-tuning's MLP/LSTM, prefix tuning's projection) is built, whatever `encoder_hidden_size` says.
 */
function checkPromptFile(
  width: (model: tfl.LayersModel) => number,
): (model: tfl.LayersModel, config: PromptLearningConfig, shapes: ReadonlyMap<string, readonly number[]>) => void {
  return (model, config, shapes) => {
    const shape = shapes.get(INTERNAL_PROMPT_KEY) ?? shapes.get(PROMPT_STATE_KEY);
    if (!shape)
      throw new AdapterMismatchError(PROMPT_STATE_KEY, `is missing from the file: a ${config.peftType} adapter holds its prompt there`);
    const n = config.numVirtualTokens;
    if (shape.length !== 2 || shape[0] !== n) {
      throw new AdapterMismatchError(
        PROMPT_STATE_KEY,
        `has shape [${shape.join(', ')}] but adapter_config.json's num_virtual_tokens is ${n} (expected ${n} rows)`,
      );
    }
    const expected = width(model);
    if (shape[1] !== expected) {
      throw new AdapterMismatchError(
        PROMPT_STATE_KEY,
        `has ${shape[1]} columns but this model's ${config.peftType} prompt rows are ${expected} wide`,
      );
    }
    loadingFromFile.add(config);
  };
}

const INTERNAL_PROMPT_KEY = `base_model.model.${PROMPT_MODULE}.${PROMPT_STATE_KEY}`;

export const promptTuningMethod: PeftMethod<PromptTuningConfig> = {
  peftType: 'PROMPT_TUNING',
  configFromJson: (json) => PromptTuningConfig.fromJson(json),
  fileKeys: promptFileKeys,
  checkConfigAgainstFile: checkPromptFile(virtualTokenWidth),
  inject: injectVirtualTokens,
};

export const promptEncoderMethod: PeftMethod<PromptEncoderConfig> = {
  peftType: 'P_TUNING',
  configFromJson: (json) => PromptEncoderConfig.fromJson(json),
  fileKeys: promptFileKeys,
  checkConfigAgainstFile: checkPromptFile(virtualTokenWidth),
  inject: injectVirtualTokens,
};

export const prefixTuningMethod: PeftMethod<PrefixTuningConfig> = {
  peftType: 'PREFIX_TUNING',
  configFromJson: (json) => PrefixTuningConfig.fromJson(json),
  fileKeys: promptFileKeys,
  checkConfigAgainstFile: checkPromptFile(prefixRowWidth),
  inject: injectPrefix,
};

registerPeftMethod(promptTuningMethod);
registerPeftMethod(promptEncoderMethod);
registerPeftMethod(prefixTuningMethod);

/**
 * Folds the reparameterisation (prefix MLP, P-tuning MLP/LSTM) of the given adapters (all by
 * default) into plain prompt tables holding its current output — what PEFT saves, and what
 * inference needs. The adapters keep training as plain prompts afterwards.
 */
export function foldPromptEncoders(peft: PeftModel, adapterNames?: readonly string[]): void {
  for (const layer of peft.peftLayers()) {
    if (
      layer instanceof PromptOwnerLayer &&
      layer.adapterVariables(layer.adapterNames()[0] ?? '').length >= 0
    ) {
      const names = (adapterNames ?? layer.adapterNames()).filter((n) => layer.adapterNames().includes(n));
      if (layer instanceof PrefixAttention && layer.layerIndex !== 0) continue;
      layer.foldEncoders(names);
    }
  }
  peft.setAdapter(peft.activeAdapters);
}
