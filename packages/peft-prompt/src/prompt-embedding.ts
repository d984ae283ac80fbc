import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { AdapterNameError, PeftError, type PeftLayer } from '@tfjs-peft/core';
import { PromptModelNotSerializableError, PromptNotMergeableError } from './prompt-errors';

const NOT_MERGEABLE =
  'prompt methods prepend learned tokens or prefixes, which are not a change of any weight';
import type { PromptParameters, VariableFactory } from './prompt-parameters';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;

/** The module path of prompt tensors inside this library; saved by PEFT as plain `prompt_embeddings`. */
export const PROMPT_MODULE = 'prompt_encoder';
export const PROMPT_STATE_KEY = 'prompt_embeddings';

/** Shared PeftLayer plumbing of the layers that own prompt parameters. */
export abstract class PromptOwnerLayer extends tfl.layers.Layer implements PeftLayer {
  readonly isPeftLayer = true as const;
  readonly mergeable = false;
  abstract readonly peftType: string;
  abstract readonly baseLayer: tfl.layers.Layer | null;
  protected readonly prompts = new Map<string, PromptParameters>();
  protected active: string[] = [];
  protected enabled = true;

  get moduleName(): string {
    return PROMPT_MODULE;
  }

  /** Whether this layer holds the adapters' variables (prefix tuning shares one owner among its layers). */
  protected get ownsParameters(): boolean {
    return true;
  }

  protected parametersOf(name: string): PromptParameters {
    const p = this.prompts.get(name);
    if (!p) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    return p;
  }

  readonly variableFactory: VariableFactory = (name, shape, init) => {
    const variable = this.addWeight(name, shape, 'float32', init, undefined, true);
    (variable as unknown as { originalName: string }).originalName = `${this.name}/${name}`;
    return variable;
  };

  /** Adds adapter `name` with its parameters (built by the method with `variableFactory`). */
  addPrompt(name: string, parameters: PromptParameters): void {
    if (this.prompts.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    this.prompts.set(name, parameters);
  }

  /** The concatenated prompt of the active adapters ([rows, width]), or null when none is in effect. */
  activePrompt(): tf.Tensor2D | null {
    if (!this.enabled || this.active.length === 0) return null;
    const values = this.active.map((n) => this.prompts.get(n)!.value());
    return values.length === 1 ? values[0] : (tf.concat(values, 0) as tf.Tensor2D);
  }

  activeRows(): number {
    if (!this.enabled) return 0;
    return this.active.reduce((sum, n) => sum + (this.prompts.get(n)?.rows ?? 0), 0);
  }

  /** Replaces the reparameterisation (MLP/LSTM) of these adapters by its current output, as PEFT saves it. */
  foldEncoders(names: readonly string[] = this.adapterNames()): void {
    for (const name of names) {
      const p = this.parametersOf(name);
      if (p.hasEncoder) {
        this.forgetVariables(p.variables());
        p.fold(this.variableFactory, `prompt_embeddings_${name}_folded`);
      }
    }
  }

  private forgetVariables(variables: LayerVariable[]): void {
    const self = this as unknown as { _trainableWeights: LayerVariable[] };
    self._trainableWeights = self._trainableWeights.filter((w) => !variables.includes(w));
  }

  override get trainableWeights(): LayerVariable[] {
    if (!this.trainable || !this.ownsParameters) return [];
    return [...this.prompts.values()].flatMap((p) => p.variables()).filter((v) => v.trainable);
  }

  override set trainableWeights(weights: LayerVariable[]) {
    super.trainableWeights = weights;
  }

  override get nonTrainableWeights(): LayerVariable[] {
    const own = this.ownsParameters ? [...this.prompts.values()].flatMap((p) => p.variables()) : [];
    return [...(this.baseLayer?.weights ?? []), ...own.filter((v) => !this.trainable || !v.trainable)];
  }

  override set nonTrainableWeights(weights: LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  override disposeWeights(): number {
    // Prefix layers share one set of parameters: only their owner releases it, so disposing the
    // whole adapted model releases each variable once.
    if (!this.ownsParameters) return 0;
    const own = [...this.prompts.values()];
    own.forEach((p) => p.dispose());
    return own.length;
  }

  // ------------------------------------------------------------ PeftLayer

  adapterNames(): string[] {
    return [...this.prompts.keys()];
  }

  setActiveAdapters(names: readonly string[]): void {
    this.active = names.filter((n) => this.prompts.has(n));
  }

  setAdaptersEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  get mergedAdapters(): readonly string[] {
    return [];
  }

  merge(): void {
    throw new PromptNotMergeableError(this.name, this.adapterNames(), NOT_MERGEABLE);
  }

  findNonFiniteMerge(): Promise<string | null> {
    return Promise.reject(new PromptNotMergeableError(this.name, this.adapterNames(), NOT_MERGEABLE));
  }

  unmerge(): void {}

  commitMerge(): void {}

  deleteAdapter(name: string): void {
    const p = this.parametersOf(name);
    if (this.ownsParameters) {
      this.forgetVariables(p.variables());
      p.dispose();
    }
    this.prompts.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  adapterVariables(name: string): LayerVariable[] {
    return this.ownsParameters ? this.parametersOf(name).variables() : [];
  }

  adapterState(name: string): Map<string, tf.Tensor> {
    if (!this.ownsParameters) return new Map();
    const p = this.parametersOf(name);
    return new Map([[PROMPT_STATE_KEY, tf.tidy(() => tf.clone(p.value()))]]);
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    if (!this.ownsParameters) return new Map();
    const p = this.parametersOf(name);
    return new Map([[PROMPT_STATE_KEY, [p.rows, p.width]]]);
  }

  /** A saved prompt is the folded value (PEFT saves the encoder's output): the adapter becomes that table. */
  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    if (!this.ownsParameters) return;
    const p = this.parametersOf(name);
    const values = state.get(PROMPT_STATE_KEY) as tf.Tensor2D;
    if (p.hasEncoder) {
      this.forgetVariables(p.variables());
      p.fold(this.variableFactory, `prompt_embeddings_${name}_loaded`, values);
    } else {
      p.embedding.write(values);
    }
  }

  /** Refused with a typed error: see PromptModelNotSerializableError (reached by model.save()/toJSON()). */
  override getConfig(): tf.serialization.ConfigDict {
    throw new PromptModelNotSerializableError(this.name);
  }
}

/**
 * Prompt tuning / P-tuning's virtual tokens. Two forms:
 * - after a `tf.layers.embedding` (inserted, `baseLayer: null`): [batch, T, dim] → [batch, n + T, dim],
 *   the Keras mask (maskZero) extended with n ones;
 * - around a @tfjs-peft/models `TokenAndPositionEmbedding` (wrapping it): the prompt is prepended to
 *   the token embeddings before positions are added (virtual tokens at positions 0..n−1, as PEFT's
 *   `inputs_embeds` path gives them in a Hugging Face model).
 */
export class PromptEmbedding extends PromptOwnerLayer {
  static className = 'PromptEmbedding';
  readonly peftType: string;
  readonly baseLayer: tfl.layers.Layer | null;
  /** The embedding layer the prompt follows (its name; for messages and config). */
  readonly embeddingLayerName: string;
  readonly width: number;

  constructor(args: {
    name: string;
    peftType: string;
    embeddingLayer: tfl.layers.Layer;
    wrap: boolean;
    width: number;
  }) {
    super({ name: args.name, trainable: true });
    this.peftType = args.peftType;
    this.baseLayer = args.wrap ? args.embeddingLayer : null;
    this.embeddingLayerName = args.embeddingLayer.name;
    this.width = args.width;
    this.supportsMasking = true;
    this.built = true;
  }

  override build(): void {
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    if (this.baseLayer) {
      const shape = [...(this.baseLayer.computeOutputShape(inputShape) as tfl.Shape)];
      shape[1] = null;
      return shape;
    }
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [shape[0], null, ...shape.slice(2)];
  }

  override computeMask(_inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const m = Array.isArray(mask) ? mask[0] : mask;
    if (m == null) return null as unknown as tf.Tensor;
    const n = this.activeRows();
    if (n === 0) return m;
    return tf.tidy(() => tf.concat([tf.ones([m.shape[0], n], 'bool'), tf.cast(m, 'bool')], 1));
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const prompt = this.activePrompt();
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      if (this.baseLayer) {
        const callArgs = { ...kwargs };
        delete callArgs.mask;
        if (prompt === null) return this.baseLayer.call(x, callArgs) as tf.Tensor;
        const out = this.baseLayer.call(x, { ...callArgs, prefixEmbeddings: prompt }) as tf.Tensor;
        if (out.shape[1] !== (x.shape[1] as number) + prompt.shape[0]) {
          throw new PeftError(
            `Layer "${this.embeddingLayerName}" ignored the prompt (no prefixEmbeddings support): update @tfjs-peft/models`,
          );
        }
        return out;
      }
      if (prompt === null) return tf.clone(x);
      const batch = x.shape[0];
      return tf.concat([tf.tile(tf.expandDims(prompt, 0), [batch, 1, 1]), x], 1);
    });
  }
}
tf.serialization.registerClass(PromptEmbedding);

/**
 * A layer that follows a prompt owner's adapters and owns nothing (the extended attention mask,
 * prefix tuning's position offset): the PeftLayer plumbing, all no-ops but `adapterNames`.
 */
export abstract class PromptFollowerLayer extends tfl.layers.Layer implements PeftLayer {
  readonly isPeftLayer = true as const;
  readonly mergeable = false;
  abstract readonly peftType: string;
  abstract readonly baseLayer: tfl.layers.Layer | null;
  protected abstract get leader(): PromptOwnerLayer;
  abstract get moduleName(): string;

  adapterNames(): string[] {
    return this.leader.adapterNames();
  }
  setActiveAdapters(): void {}
  setAdaptersEnabled(): void {}
  get mergedAdapters(): readonly string[] {
    return [];
  }
  merge(): void {
    throw new PromptNotMergeableError(this.name, this.adapterNames(), NOT_MERGEABLE);
  }
  findNonFiniteMerge(): Promise<string | null> {
    return Promise.reject(new PromptNotMergeableError(this.name, this.adapterNames(), NOT_MERGEABLE));
  }
  unmerge(): void {}
  commitMerge(): void {}
  deleteAdapter(): void {}
  adapterVariables(): LayerVariable[] {
    return [];
  }
  adapterState(): Map<string, tf.Tensor> {
    return new Map();
  }
  adapterStateShapes(): Map<string, number[]> {
    return new Map();
  }
  loadAdapterState(): void {}

  override getConfig(): tf.serialization.ConfigDict {
    throw new PromptModelNotSerializableError(this.name);
  }
}

/**
 * Extends an attention mask [batch, T] to [batch, n + T] with ones for the virtual tokens of the
 * prompt layer it belongs to (always attended; padding stays masked). Inserted on the model's
 * `attention_mask` input; it follows its prompt layer's adapters and owns nothing.
 */
export class PromptAttentionMask extends PromptFollowerLayer {
  static className = 'PromptAttentionMask';
  readonly baseLayer = null;
  readonly peftType: string;

  constructor(
    args: { name: string },
    readonly prompt: PromptEmbedding,
  ) {
    super({ name: args.name, trainable: true });
    this.peftType = prompt.peftType;
    this.built = true;
  }

  protected get leader(): PromptOwnerLayer {
    return this.prompt;
  }

  get moduleName(): string {
    return `${PROMPT_MODULE}.attention_mask`;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return [shape[0], null];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const mask = Array.isArray(inputs) ? inputs[0] : inputs;
      const n = this.prompt.activeRows();
      if (n === 0) return tf.clone(mask);
      return tf.concat([tf.ones([mask.shape[0], n], mask.dtype), mask], 1);
    });
  }
}
tf.serialization.registerClass(PromptAttentionMask);
