import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  AdapterNameError,
  applyFrozenDense,
  releaseLayerWeights,
  moduleKey,
  type PeftLayer,
} from '@tfjs-peft/core';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;

/** What a Dense layer exposes at run time (its TypeScript fields are private). */
interface DenseInternals {
  kernel: LayerVariable;
  bias: LayerVariable | null;
  useBias: boolean;
  units: number;
  activation: tf.serialization.Serializable & { apply(x: tf.Tensor): tf.Tensor };
  built: boolean;
}

export interface BitFitDenseArgs {
  layer: tfl.layers.Layer;
  name?: string;
  /** For deserialisation: adapters whose biases are created when the layer is built. */
  adapters?: string[];
  activeAdapters?: string[];
  /** True when the wrapped layer was created for this wrapper (a loaded model), so it is disposed with it. */
  ownsBaseLayer?: boolean;
}

/**
 * BitFit on a Dense layer: `act(x·W + b_adapter)` with W frozen (shared with the user's layer, no
 * gradient) and one trainable bias per adapter, initialised to the base bias's value — so a new
 * adapter computes exactly the base layer, bit for bit (the same fused kernel Dense uses).
 * Several active adapters: `b_base + Σ (b_i − b_base)`.
 */
export class BitFitDense extends tfl.layers.Layer implements PeftLayer {
  static className = 'BitFitDense';
  readonly isPeftLayer = true as const;
  readonly peftType = 'BITFIT';
  readonly baseLayer: tfl.layers.Layer;
  private readonly biases = new Map<string, LayerVariable | null>();
  private active: string[] = [];
  private enabled = true;
  private merged: string[] = [];
  /** The base bias before merging, kept (tf.clone shares the data) for a bit-exact unmerge. */
  private unmergedBias: tf.Tensor | null = null;
  private readonly ownsBaseLayer: boolean;

  constructor(args: BitFitDenseArgs) {
    super({ name: args.name ?? args.layer.name, trainable: true });
    this.baseLayer = args.layer;
    this.ownsBaseLayer = args.ownsBaseLayer ?? false;
    this.supportsMasking = true;
    for (const name of args.adapters ?? []) this.addAdapter(name);
    this.active = [...(args.activeAdapters ?? [])];
  }

  private get base(): DenseInternals {
    return this.baseLayer as unknown as DenseInternals;
  }

  get moduleName(): string {
    return moduleKey(this.baseLayer.name);
  }

  get units(): number {
    return this.base.units;
  }

  // ------------------------------------------------------------ weights

  override get trainableWeights(): LayerVariable[] {
    return [...super.trainableWeights, ...this.baseLayer.trainableWeights];
  }

  override set trainableWeights(weights: LayerVariable[]) {
    super.trainableWeights = weights;
  }

  override get nonTrainableWeights(): LayerVariable[] {
    return [...super.nonTrainableWeights, ...this.baseLayer.nonTrainableWeights];
  }

  override set nonTrainableWeights(weights: LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  /** Registers an adapter; its bias is created now if the base layer is built, else at build(). */
  addAdapter(name: string): void {
    if (this.biases.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    this.biases.set(name, null);
    if (this.base.built) this.createPendingWeights();
  }

  private createPendingWeights(): void {
    const baseBias = this.base.bias;
    if (!baseBias) throw new Error(`BitFitDense: layer "${this.baseLayer.name}" has no bias`);
    for (const [name, variable] of this.biases) {
      if (variable) continue;
      const bias = this.addWeight(
        `bias_${name}`,
        [this.units],
        'float32',
        tfl.initializers.zeros(),
        undefined,
        true,
      );
      // Same name whether created now or in build() (a loaded model), so saved models find it.
      (bias as unknown as { originalName: string }).originalName = `${this.name}/bias_${name}`;
      // The base value (tfjs assigns by reference: no new memory until the bias trains).
      bias.write(this.unmergedBias ?? baseBias.read());
      this.biases.set(name, bias);
    }
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (!this.base.built) {
      this.baseLayer.build(inputShape);
      this.baseLayer.built = true;
    }
    this.createPendingWeights();
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.baseLayer.computeOutputShape(inputShape);
  }

  // ------------------------------------------------------------ forward

  /** The bias the forward pass uses now. */
  private effectiveBias(): tf.Tensor {
    const baseBias = this.base.bias!.read();
    if (!this.enabled) return this.unmergedBias ?? baseBias;
    const pending = this.active.filter((n) => !this.merged.includes(n));
    if (pending.length === 0) return baseBias;
    if (pending.length === 1 && this.merged.length === 0) return this.biases.get(pending[0])!.read();
    const original = this.unmergedBias ?? baseBias;
    let sum: tf.Tensor = baseBias;
    for (const name of pending) sum = tf.add(sum, tf.sub(this.biases.get(name)!.read(), original));
    return sum;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const base = this.base;
      return applyFrozenDense(x, base.kernel.read(), this.effectiveBias(), base.activation);
    });
  }

  /** Disposes only what this layer owns: a wrapped user layer's weights belong to the user's model. */
  override disposeWeights(): number {
    const own = [...this.biases.values()].filter((v): v is LayerVariable => v !== null);
    if (this.ownsBaseLayer) own.push(...this.baseLayer.weights);
    own.forEach((v) => v.dispose());
    this.unmergedBias?.dispose();
    this.unmergedBias = null;
    return own.length;
  }

  // ------------------------------------------------------------ PeftLayer

  adapterNames(): string[] {
    return [...this.biases.keys()];
  }

  setActiveAdapters(names: readonly string[]): void {
    this.active = names.filter((n) => this.biases.has(n));
  }

  setAdaptersEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  get activeAdapters(): readonly string[] {
    return this.active;
  }

  get mergedAdapters(): readonly string[] {
    return this.merged;
  }

  /** The bias after merging `names`: one adapter's values, or base + Σ deltas for several. */
  private mergedBias(names: readonly string[]): tf.Tensor {
    names.forEach((n) => this.requireBias(n));
    return tf.tidy(() => {
      const current = this.base.bias!.read();
      if (names.length === 1 && this.merged.length === 0) return tf.clone(this.requireBias(names[0]).read());
      const original = this.unmergedBias ?? current;
      let sum: tf.Tensor = current;
      for (const name of names) sum = tf.add(sum, tf.sub(this.requireBias(name).read(), original));
      return sum;
    });
  }

  async findNonFiniteMerge(names: readonly string[]): Promise<string | null> {
    const finite = tf.tidy(() => tf.all(tf.isFinite(this.mergedBias(names))));
    const ok = (await finite.data())[0] === 1;
    finite.dispose();
    return ok ? null : 'the bias';
  }

  /** Writes the trained bias into the base layer's bias (the kernel is never touched). */
  merge(names: readonly string[]): void {
    const bias = this.base.bias!;
    const merged = this.mergedBias(names);
    if (this.unmergedBias === null) this.unmergedBias = tf.keep(tf.clone(bias.read()));
    bias.write(merged);
    merged.dispose();
    this.merged.push(...names);
  }

  unmerge(): void {
    if (this.unmergedBias === null) return;
    this.base.bias!.write(this.unmergedBias);
    this.unmergedBias.dispose();
    this.unmergedBias = null;
    this.merged = [];
  }

  commitMerge(): void {
    this.unmergedBias?.dispose();
    this.unmergedBias = null;
    this.merged = [];
  }

  deleteAdapter(name: string): void {
    const bias = this.biases.get(name);
    if (bias === undefined) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    if (this.merged.includes(name))
      throw new AdapterNameError(name, `is merged into layer "${this.name}"; unmerge first`);
    if (bias) releaseLayerWeights(this, [bias]);
    this.biases.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  adapterVariables(name: string): LayerVariable[] {
    return [this.requireBias(name)];
  }

  /** PEFT's key style: `<module>.bias` [units], the trained values. */
  adapterState(name: string): Map<string, tf.Tensor> {
    return new Map([['bias', tf.clone(this.requireBias(name).read())]]);
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    this.requireBias(name);
    return new Map([['bias', [this.units]]]);
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    this.requireBias(name).write(state.get('bias')!);
  }

  private requireBias(name: string): LayerVariable {
    const bias = this.biases.get(name);
    if (bias === undefined) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    if (bias === null) throw new AdapterNameError(name, `layer "${this.name}" is not built yet`);
    return bias;
  }

  // ------------------------------------------------------------ serialisation

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      layer: { className: this.baseLayer.getClassName(), config: this.baseLayer.getConfig() },
      adapters: [...this.biases.keys()],
      activeAdapters: [...this.active],
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const inner = config.layer as { className: string; config: tf.serialization.ConfigDict };
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[inner.className];
    if (!entry) throw new Error(`BitFitDense: unknown wrapped layer class ${inner.className}`);
    const [innerClass, innerFromConfig] = entry;
    const layer = innerFromConfig(innerClass, inner.config) as unknown as tfl.layers.Layer;
    return new (cls as unknown as new (args: BitFitDenseArgs) => T)({
      layer,
      name: config.name as string,
      adapters: config.adapters as string[],
      activeAdapters: config.activeAdapters as string[],
      ownsBaseLayer: true,
    });
  }
}
tf.serialization.registerClass(BitFitDense);
