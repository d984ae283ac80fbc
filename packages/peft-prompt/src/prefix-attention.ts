import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { PROMPT_MODULE, PromptFollowerLayer, PromptOwnerLayer } from './prompt-embedding';
import type { PromptParameters } from './prompt-parameters';

type Kwargs = Record<string, unknown>;

/**
 * Prefix tuning around one attention core (`MultiHeadAttentionCore` of @tfjs-peft/models, inputs
 * `[query, key, value, keyMask?]`): keys become [prefixK; keys], values [prefixV; values], the mask
 * [1…1; mask]. All layers read one prompt tensor [n, Σ 2·widthᵢ] (PEFT's layout when every width is
 * the same: for layer i, columns [2i·width, (2i+1)·width) are the key prefix and the next `width` the
 * value prefix; with per-layer widths, layer i's key then value columns start at `offset` =
 * Σ_{j<i} 2·widthⱼ), held by layer 0, which alone reports the adapter's variables and saved state.
 */
export class PrefixAttention extends PromptOwnerLayer {
  static className = 'PrefixAttention';
  readonly peftType = 'PREFIX_TUNING';
  readonly baseLayer: tfl.layers.Layer;

  constructor(
    args: { name: string; core: tfl.layers.Layer; layerIndex: number; width: number; offset?: number },
    private readonly owner: PrefixAttention | null,
  ) {
    super({ name: args.name, trainable: true });
    this.baseLayer = args.core;
    this.layerIndex = args.layerIndex;
    this.width = args.width;
    this.offset = args.offset ?? 2 * args.layerIndex * args.width;
    this.built = true;
  }

  readonly layerIndex: number;
  readonly width: number;
  /** First column of this layer's key prefix in the shared prompt tensor (its value prefix follows). */
  readonly offset: number;

  protected override get ownsParameters(): boolean {
    return this.owner === null;
  }

  /** Registers an adapter; on layers other than the owner, `parameters` is the owner's (shared). */
  override addPrompt(name: string, parameters: PromptParameters): void {
    super.addPrompt(name, parameters);
  }

  override build(): void {
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.baseLayer.computeOutputShape(inputShape);
  }

  /** Prompts are read through the owner, so that a fold or load there is seen by every layer. */
  private source(): PromptOwnerLayer {
    return this.owner ?? this;
  }

  override activePrompt(): tf.Tensor2D | null {
    if (!this.enabled || this.active.length === 0) return null;
    const owner = this.source() as PrefixAttention;
    const values = this.active.map((n) => owner.prompts.get(n)!.value());
    return values.length === 1 ? values[0] : (tf.concat(values, 0) as tf.Tensor2D);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    return tf.tidy(() => {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      const callArgs = { ...kwargs };
      delete callArgs.mask;
      const prompt = this.activePrompt();
      if (prompt === null) return this.baseLayer.call(list, callArgs);
      const [query, key, value, mask] = list;
      const n = prompt.shape[0];
      const batch = query.shape[0];
      const w = this.width;
      const prefix = (offset: number) =>
        tf.tile(tf.expandDims(tf.slice(prompt, [0, offset], [n, w]), 0), [batch, 1, 1]);
      const keys = tf.concat([prefix(this.offset), key], 1);
      const values = tf.concat([prefix(this.offset + w), value], 1);
      const next = [query, keys, values];
      if (mask != null) next.push(tf.concat([tf.ones([batch, n], mask.dtype), mask], 1));
      return this.baseLayer.call(next, callArgs);
    });
  }

  // getConfig: PromptOwnerLayer's, which refuses serialisation with PromptModelNotSerializableError.
}
tf.serialization.registerClass(PrefixAttention);

/**
 * Prefix tuning's position shift: wraps the model's `TokenAndPositionEmbedding` (@tfjs-peft/models)
 * and calls it with `positionOffset` = the active prefix's number of virtual tokens, so the real
 * tokens take positions n.., n+1, … — what Hugging Face transformers does when PEFT passes the
 * prefixes as `past_key_values` (GPT-2 and BERT alike: `past_key_values_length` offsets the position
 * ids). With the adapters disabled or no prefix active the offset is 0 (the base model exactly). It
 * follows the adapters of the prefix layer that owns the parameters and owns nothing itself; tfjs's
 * `predict` does not replay per-node call kwargs, hence a layer.
 */
export class PrefixPositionOffset extends PromptFollowerLayer {
  static className = 'PrefixPositionOffset';
  readonly peftType = 'PREFIX_TUNING';
  readonly baseLayer: tfl.layers.Layer;

  constructor(
    args: { name: string; embedding: tfl.layers.Layer },
    readonly prefix: PrefixAttention,
  ) {
    super({ name: args.name, trainable: true });
    this.baseLayer = args.embedding;
    this.built = true;
  }

  protected get leader(): PrefixAttention {
    return this.prefix;
  }

  get moduleName(): string {
    return `${PROMPT_MODULE}.position_offset`;
  }

  /** The first position of the real tokens now: the active prefixes' total rows (0 when disabled). */
  get positionOffset(): number {
    return this.prefix.activeRows();
  }

  override build(): void {
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.baseLayer.computeOutputShape(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const callArgs = { ...kwargs };
    delete callArgs.mask;
    const offset = this.positionOffset;
    return this.baseLayer.call(inputs, offset === 0 ? callArgs : { ...callArgs, positionOffset: offset });
  }

  // The wrapped embedding's weights stay the model's (frozen by PeftModel); this layer owns none.
  override get trainableWeights(): tfl.LayerVariable[] {
    return [];
  }

  override set trainableWeights(weights: tfl.LayerVariable[]) {
    super.trainableWeights = weights;
  }

  override get nonTrainableWeights(): tfl.LayerVariable[] {
    return this.baseLayer.weights;
  }

  override set nonTrainableWeights(weights: tfl.LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  override disposeWeights(): number {
    return 0;
  }
}
tf.serialization.registerClass(PrefixPositionOffset);
