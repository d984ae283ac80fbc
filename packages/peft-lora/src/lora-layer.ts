import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { AdapterNameError, moduleKey, releaseLayerWeights, type PeftLayer } from '@tfjs-peft/core';
import type { LoraInit } from './lora-config';
import { TrainedBias } from './lora-trained-bias';
import { deserializeWrappedLayer } from './wrapped-layer-config';

type LayerVariable = tfl.LayerVariable;
export type Kwargs = Record<string, unknown>;
type Initializer = ReturnType<typeof tfl.initializers.zeros>;

/** One adapter's settings inside a LoRA layer (serialised with the layer). */
export interface LoraAdapterSettings {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  useRslora: boolean;
  initLoraWeights: LoraInit;
  /** DoRA: a learned magnitude per output unit over the normalised adapted weight (Dense only). */
  useDora?: boolean;
}

export interface LoraAdapter extends LoraAdapterSettings {
  scale: number;
  /** The down-projection, in tfjs layout (PEFT's lora_A.weight is its transpose). */
  loraA: LayerVariable | null;
  /** The up-projection, in tfjs layout. */
  loraB: LayerVariable | null;
  /** DoRA's magnitude m [out]. */
  magnitude: LayerVariable | null;
}

export interface LoraLayerArgs {
  layer: tfl.layers.Layer;
  name?: string;
  /** For deserialisation: adapters to create when the layer is built. */
  adapters?: Record<string, LoraAdapterSettings>;
  activeAdapters?: string[];
  /** True when the wrapped layer was created for this wrapper (a loaded model), so it is disposed with it. */
  ownsBaseLayer?: boolean;
}

/** What the wrapped tfjs layers expose at run time (their TypeScript fields are private). */
export interface KernelLayerInternals {
  kernel: LayerVariable;
  bias: LayerVariable | null;
  useBias: boolean;
  /** Absent on layers without one (Embedding). */
  activation?: { apply(x: tf.Tensor): tf.Tensor };
  built: boolean;
}

/**
 * The part of LoRA every layer kind shares: per-adapter weights, which adapters run, enabling,
 * exact merges (the pre-merge kernel is kept — tf.clone shares its data — and written back on
 * unmerge), PEFT's saved layout and serialisation. Subclasses say how the base layer computes, how
 * the LoRA branch computes, what ΔW is, and how their weights map to PyTorch's layout.
 */
export abstract class LoraLayer extends tfl.layers.Layer implements PeftLayer {
  readonly isPeftLayer = true as const;
  readonly peftType = 'LORA';
  readonly baseLayer: tfl.layers.Layer;
  protected readonly adapters = new Map<string, LoraAdapter>();
  protected active: string[] = [];
  protected enabled = true;
  protected merged: string[] = [];
  protected unmergedKernel: tf.Tensor | null = null;
  /** The base layer's bias, when an adapter with `bias: 'all' | 'loraOnly'` trains it in place. */
  protected trainedBias: TrainedBias | null = null;
  /** Whether the adapter that trains the bias is active. */
  private biasActive = false;
  private readonly ownsBaseLayer: boolean;

  constructor(args: LoraLayerArgs) {
    super({ name: args.name ?? args.layer.name, trainable: true });
    this.baseLayer = args.layer;
    this.ownsBaseLayer = args.ownsBaseLayer ?? false;
    this.supportsMasking = true;
    for (const [name, settings] of Object.entries(args.adapters ?? {})) this.addAdapter(name, settings);
    this.active = [...(args.activeAdapters ?? [])];
  }

  protected get base(): KernelLayerInternals {
    return this.baseLayer as unknown as KernelLayerInternals;
  }

  /** The frozen weight the adapters change (a Dense or Conv2D kernel, an Embedding table). */
  protected get kernelVariable(): LayerVariable {
    return this.base.kernel;
  }

  /** PEFT's saved names of A and B (Embedding uses `lora_embedding_A`/`_B`). */
  protected readonly stateKeys = { a: 'lora_A.weight', b: 'lora_B.weight' };

  protected activate(y: tf.Tensor): tf.Tensor {
    return this.base.activation ? this.base.activation.apply(y) : y;
  }

  override computeMask(
    inputs: tf.Tensor | tf.Tensor[],
    mask?: tf.Tensor | tf.Tensor[],
  ): tf.Tensor | tf.Tensor[] {
    return this.baseLayer.computeMask(inputs, mask);
  }

  get moduleName(): string {
    return moduleKey(this.baseLayer.name);
  }

  // ------------------------------------------------------------ what a layer kind provides

  /** Shapes (tfjs layout) and initialisers of A and B for an adapter of rank r. */
  protected abstract adapterWeightSpecs(adapter: LoraAdapter): {
    a: number[];
    b: number[];
    aInit: Initializer;
    bInit: Initializer;
  };
  /** The frozen base layer's output before its activation (the kernel may be the pre-merge one). */
  protected abstract baseForward(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor;
  /** scale · B(A(dropout(x))), before the activation. */
  protected abstract loraForward(x: tf.Tensor, adapter: LoraAdapter, training: boolean): tf.Tensor;
  /** What the adapter adds to the kernel, in tfjs layout. */
  abstract deltaWeight(name: string): tf.Tensor;
  /** tfjs layout → PyTorch layout for A or B; and back. */
  protected abstract toPeftLayout(tensor: tf.Tensor): tf.Tensor;
  protected abstract fromPeftLayout(tensor: tf.Tensor): tf.Tensor;
  /** Extra per-adapter weights (DoRA's magnitude) after A and B exist. */
  protected createExtraWeights(_name: string, _adapter: LoraAdapter): void {}

  // ------------------------------------------------------------ weights

  override get trainableWeights(): LayerVariable[] {
    const bias = this.trainedBias?.variable;
    return [
      ...super.trainableWeights,
      ...this.baseLayer.trainableWeights,
      ...(bias && bias.trainable && !this.baseLayer.trainableWeights.includes(bias) ? [bias] : []),
    ];
  }

  override set trainableWeights(weights: LayerVariable[]) {
    super.trainableWeights = weights;
  }

  override get nonTrainableWeights(): LayerVariable[] {
    const bias = this.trainedBias?.variable;
    const base = this.baseLayer.nonTrainableWeights.filter((v) => !(v === bias && bias.trainable));
    return [...super.nonTrainableWeights, ...base];
  }

  /** The base layer's bias variable (null when it has none). */
  get biasVariable(): LayerVariable | null {
    return this.base.useBias && this.base.bias ? this.base.bias : null;
  }

  /** The adapter that trains the base layer's bias (`bias: 'all' | 'loraOnly'`), if any. */
  get biasAdapter(): string | null {
    return this.trainedBias?.adapterName ?? null;
  }

  /**
   * Lets adapter `name` train the base layer's bias in place (saved as PEFT's
   * `<module>.base_layer.bias`). One adapter per layer, as PEFT allows one bias adapter per model.
   * Returns false when the layer has no bias.
   */
  trainBias(name: string): boolean {
    if (this.trainedBias)
      throw new AdapterNameError(
        name,
        `layer "${this.name}"'s bias is trained by "${this.trainedBias.adapterName}"`,
      );
    const variable = this.biasVariable;
    if (!variable) return false;
    this.trainedBias = new TrainedBias(variable, name);
    this.biasActive = false;
    this.syncBias();
    return true;
  }

  /** The trained bias is in the variable while its adapter is enabled and active (or merged). */
  private syncBias(): void {
    const record = this.trainedBias;
    record?.setApplied(this.enabled && (this.biasActive || this.merged.includes(record.adapterName)));
  }

  override set nonTrainableWeights(weights: LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  /** Registers an adapter; its variables are created now if the base layer is built, else at build(). */
  addAdapter(name: string, settings: LoraAdapterSettings): void {
    if (this.adapters.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    const scale = settings.useRslora
      ? settings.loraAlpha / Math.sqrt(settings.r)
      : settings.loraAlpha / settings.r;
    this.adapters.set(name, { ...settings, scale, loraA: null, loraB: null, magnitude: null });
    if (this.base.built) this.createPendingWeights();
  }

  protected createPendingWeights(): void {
    for (const [name, adapter] of this.adapters) {
      if (adapter.loraA) continue;
      const { a, b, aInit, bInit } = this.adapterWeightSpecs(adapter);
      adapter.loraA = this.addAdapterWeight(`lora_A_${name}`, a, aInit);
      adapter.loraB = this.addAdapterWeight(`lora_B_${name}`, b, bInit);
      this.createExtraWeights(name, adapter);
    }
  }

  /** PEFT's initialisations: A Kaiming-uniform(a=√5) ~ U(±1/√fan_in) or N(0, 1/r²); B zeros, or random for tests. */
  protected initializers(
    adapter: LoraAdapter,
    aFanIn: number,
    bFanIn: number,
  ): { aInit: Initializer; bInit: Initializer } {
    const uniform = (fanIn: number) =>
      tfl.initializers.randomUniform({ minval: -1 / Math.sqrt(fanIn), maxval: 1 / Math.sqrt(fanIn) });
    return {
      aInit:
        adapter.initLoraWeights === 'gaussian'
          ? tfl.initializers.randomNormal({ mean: 0, stddev: 1 / adapter.r })
          : uniform(aFanIn),
      bInit: adapter.initLoraWeights === false ? uniform(bFanIn) : tfl.initializers.zeros(),
    };
  }

  /**
   * Adapter weights are created either when the adapter is added (outside any name scope) or in
   * build() (inside this layer's scope, when a saved model is loaded). The name a saved model records
   * must be the same both ways, so it is set explicitly to `<layer>/<weight>`.
   */
  protected addAdapterWeight(weightName: string, shape: number[], initializer: Initializer): LayerVariable {
    const variable = this.addWeight(weightName, shape, 'float32', initializer, undefined, true);
    (variable as unknown as { originalName: string }).originalName = `${this.name}/${weightName}`;
    return variable;
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

  /** The kernel the base computes with: the pre-merge one while disabled, so disabling is exact. */
  protected currentKernel(): tf.Tensor {
    return !this.enabled && this.unmergedKernel ? this.unmergedKernel : this.kernelVariable.read();
  }

  /** Adapters that run in this forward pass (active, enabled, not merged). */
  protected runningAdapters(): string[] {
    return this.enabled ? this.active.filter((n) => !this.merged.includes(n) && this.adapters.has(n)) : [];
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const training = kwargs?.training === true;
      let y = this.baseForward(x, this.currentKernel());
      for (const name of this.runningAdapters())
        y = tf.add(y, this.loraForward(x, this.adapters.get(name)!, training));
      return this.activate(y);
    });
  }

  // ------------------------------------------------------------ PeftLayer

  adapterNames(): string[] {
    const names = [...this.adapters.keys()];
    const bias = this.biasAdapter;
    return bias !== null && !names.includes(bias) ? [...names, bias] : names;
  }

  /** True when adapter `name` has LoRA weights here (not only the bias it trains). */
  hasLoraAdapter(name: string): boolean {
    return this.adapters.has(name);
  }

  setActiveAdapters(names: readonly string[]): void {
    this.active = names.filter((n) => this.adapters.has(n));
    this.biasActive = this.biasAdapter !== null && names.includes(this.biasAdapter);
    this.syncBias();
  }

  setAdaptersEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.syncBias();
  }

  get activeAdapters(): readonly string[] {
    return this.active;
  }

  get mergedAdapters(): readonly string[] {
    return this.merged;
  }

  private mergedKernel(names: readonly string[]): tf.Tensor {
    return tf.tidy(() =>
      names.reduce<tf.Tensor>((sum, name) => tf.add(sum, this.deltaWeight(name)), this.kernelVariable.read()),
    );
  }

  async findNonFiniteMerge(names: readonly string[]): Promise<string | null> {
    const lora = names.filter((n) => this.adapters.has(n));
    if (lora.length === 0) return null;
    const finite = tf.tidy(() => tf.all(tf.isFinite(this.mergedKernel(lora))));
    const ok = (await finite.data())[0] === 1;
    finite.dispose();
    return ok ? null : 'the kernel';
  }

  /** Writes the LoRA deltas into the kernel; a trained bias is already in place (it is only recorded as merged). */
  merge(names: readonly string[]): void {
    const lora = names.filter((n) => this.adapters.has(n));
    if (lora.length) {
      const kernel = this.kernelVariable;
      const merged = this.mergedKernel(lora);
      if (this.unmergedKernel === null) this.unmergedKernel = tf.keep(tf.clone(kernel.read()));
      kernel.write(merged);
      merged.dispose();
    }
    this.merged.push(...names);
    this.syncBias();
  }

  unmerge(): void {
    if (this.unmergedKernel !== null) {
      this.kernelVariable.write(this.unmergedKernel);
      this.unmergedKernel.dispose();
      this.unmergedKernel = null;
    }
    this.merged = [];
    this.syncBias();
  }

  /** The merged kernel, and a merged adapter's trained bias, become the base (mergeAndUnload). */
  commitMerge(): void {
    if (this.trainedBias && this.merged.includes(this.trainedBias.adapterName)) this.trainedBias.commit();
    this.unmergedKernel?.dispose();
    this.unmergedKernel = null;
    this.merged = [];
  }

  private ownVariables(adapter: LoraAdapter): LayerVariable[] {
    return [adapter.loraA, adapter.loraB, adapter.magnitude].filter((v): v is LayerVariable => v !== null);
  }

  /** Frees the adapter's variables; a bias it trained gets its value from before the adapter back. */
  deleteAdapter(name: string): void {
    const trainsBias = this.biasAdapter === name;
    const adapter = trainsBias && !this.adapters.has(name) ? null : this.requireAdapter(name);
    if (this.merged.includes(name))
      throw new AdapterNameError(name, `is merged into layer "${this.name}"; unmerge first`);
    if (adapter) {
      releaseLayerWeights(this, this.ownVariables(adapter));
      this.adapters.delete(name);
      this.active = this.active.filter((n) => n !== name);
    }
    if (trainsBias) {
      this.trainedBias!.restore();
      this.trainedBias = null;
      this.biasActive = false;
    }
  }

  /** Disposes only what this layer owns: a wrapped user layer's weights belong to the user's model. */
  override disposeWeights(): number {
    const own = [...this.adapters.values()].flatMap((a) => this.ownVariables(a));
    if (this.ownsBaseLayer) own.push(...this.baseLayer.weights);
    own.forEach((v) => v.dispose());
    this.trainedBias?.dispose();
    this.trainedBias = null;
    this.unmergedKernel?.dispose();
    this.unmergedKernel = null;
    return own.length;
  }

  adapterVariables(name: string): LayerVariable[] {
    const bias = this.biasAdapter === name ? [this.trainedBias!.variable] : [];
    if (bias.length && !this.adapters.has(name)) return bias;
    return [...this.ownVariables(this.requireAdapter(name)), ...bias];
  }

  /** PEFT's key for the bias of a wrapped layer. */
  private static readonly BIAS_KEY = 'base_layer.bias';

  adapterSettings(name: string): LoraAdapterSettings & { scale: number } {
    const { r, loraAlpha, loraDropout, useRslora, initLoraWeights, useDora, scale } =
      this.requireAdapter(name);
    return { r, loraAlpha, loraDropout, useRslora, initLoraWeights, useDora, scale };
  }

  adapterState(name: string): Map<string, tf.Tensor> {
    const state = new Map<string, tf.Tensor>();
    if (this.adapters.has(name) || this.biasAdapter !== name) {
      const adapter = this.requireAdapter(name);
      state.set(this.stateKeys.a, this.toPeftLayout(adapter.loraA!.read()));
      state.set(this.stateKeys.b, this.toPeftLayout(adapter.loraB!.read()));
      if (adapter.magnitude) state.set('lora_magnitude_vector', tf.clone(adapter.magnitude.read()));
    }
    if (this.biasAdapter === name) state.set(LoraLayer.BIAS_KEY, this.trainedBias!.trainedValue());
    return state;
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    const shapes = new Map<string, number[]>();
    if (this.adapters.has(name) || this.biasAdapter !== name) {
      const adapter = this.requireAdapter(name);
      const peftShape = (v: LayerVariable) =>
        tf.tidy(() => this.toPeftLayout(tf.zeros(v.shape as number[])).shape);
      shapes.set(this.stateKeys.a, peftShape(adapter.loraA!));
      shapes.set(this.stateKeys.b, peftShape(adapter.loraB!));
      if (adapter.magnitude) shapes.set('lora_magnitude_vector', adapter.magnitude.shape as number[]);
    }
    if (this.biasAdapter === name)
      shapes.set(LoraLayer.BIAS_KEY, this.trainedBias!.variable.shape as number[]);
    return shapes;
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    tf.tidy(() => {
      if (this.adapters.has(name) || this.biasAdapter !== name) {
        const adapter = this.requireAdapter(name);
        adapter.loraA!.write(this.fromPeftLayout(state.get(this.stateKeys.a)!));
        adapter.loraB!.write(this.fromPeftLayout(state.get(this.stateKeys.b)!));
        if (adapter.magnitude) adapter.magnitude.write(state.get('lora_magnitude_vector')!);
      }
      if (this.biasAdapter === name) this.trainedBias!.setTrainedValue(state.get(LoraLayer.BIAS_KEY)!);
    });
  }

  protected requireAdapter(name: string): LoraAdapter {
    const adapter = this.adapters.get(name);
    if (!adapter) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    if (!adapter.loraA) throw new AdapterNameError(name, `layer "${this.name}" is not built yet`);
    return adapter;
  }

  // ------------------------------------------------------------ serialisation

  override getConfig(): tf.serialization.ConfigDict {
    const adapters: Record<string, LoraAdapterSettings> = {};
    for (const [name, { r, loraAlpha, loraDropout, useRslora, initLoraWeights, useDora }] of this.adapters) {
      adapters[name] = { r, loraAlpha, loraDropout, useRslora, initLoraWeights, useDora: useDora ?? false };
    }
    return {
      ...super.getConfig(),
      layer: { className: this.baseLayer.getClassName(), config: this.baseLayer.getConfig() },
      adapters: adapters as unknown as tf.serialization.ConfigDict,
      activeAdapters: [...this.active],
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const layer = deserializeWrappedLayer(config);
    return new (cls as unknown as new (args: LoraLayerArgs) => T)({
      layer,
      name: config.name as string,
      adapters: config.adapters as unknown as Record<string, LoraAdapterSettings>,
      activeAdapters: config.activeAdapters as string[],
      ownsBaseLayer: true,
    });
  }
}
