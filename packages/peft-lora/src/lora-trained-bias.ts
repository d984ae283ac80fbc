import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { AdapterNameError, moduleKey, UnsupportedLayerError, type PeftLayer } from '@tfjs-peft/core';
import { deserializeWrappedLayer } from './wrapped-layer-config';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;

/**
 * The bias variable of a user's layer that `bias: 'all'` trains: the weight named `bias` (Dense,
 * Conv*, …), or `beta` for LayerNormalization / BatchNormalization (PyTorch calls it `bias`, and
 * PEFT's `'all'` trains every parameter whose name ends in `bias`). Null when the layer has none.
 */
export function biasVariableOf(layer: tfl.layers.Layer): LayerVariable | null {
  const className = layer.getClassName();
  const wanted = className === 'LayerNormalization' || className === 'BatchNormalization' ? 'beta' : 'bias';
  const found = layer.weights.filter((v) => v.originalName.split('/').pop() === wanted);
  if (found.length > 1) {
    throw new UnsupportedLayerError(layer.name, className, 'layers with one bias (for bias: "all")');
  }
  return found[0] ?? null;
}

/**
 * A user's bias variable trained in place by one adapter (`bias: 'all' | 'loraOnly'`): no copy is
 * made. The value from before the adapter is kept (tf.clone shares its memory; the optimizer's
 * writes allocate new tensors), so that while the adapter is disabled or inactive the variable holds
 * the base value exactly, and deleting the adapter (or unload()) gives it back bit for bit. Once
 * committed (mergeAndUnload) the trained value is the base.
 */
export class TrainedBias {
  private original: tf.Tensor | null;
  /** The trained value while the base value is in the variable. */
  private parked: tf.Tensor | null = null;

  constructor(
    readonly variable: LayerVariable,
    readonly adapterName: string,
  ) {
    this.original = tf.keep(tf.clone(variable.read()));
  }

  /** Puts the trained value (true) or the value from before the adapter (false) in the variable. */
  setApplied(applied: boolean): void {
    if (this.original === null || applied === (this.parked === null)) return;
    if (applied) {
      this.variable.write(this.parked!);
      this.parked!.dispose();
      this.parked = null;
    } else {
      this.parked = tf.keep(tf.clone(this.variable.read()));
      this.variable.write(this.original);
    }
  }

  /** The trained value (a new tensor; the caller disposes it). */
  trainedValue(): tf.Tensor {
    return tf.clone(this.parked ?? this.variable.read());
  }

  setTrainedValue(value: tf.Tensor): void {
    if (this.parked) {
      this.parked.dispose();
      this.parked = tf.keep(tf.clone(value));
    } else this.variable.write(value);
  }

  /** Writes the value from before the adapter back, bit-exact, and frees the record. */
  restore(): void {
    if (this.original !== null) this.variable.write(this.original);
    this.dispose();
  }

  /** The trained value becomes the base value (mergeAndUnload keeps it). */
  commit(): void {
    this.setApplied(true);
    this.original?.dispose();
    this.original = null;
  }

  dispose(): void {
    this.parked?.dispose();
    this.original?.dispose();
    this.parked = null;
    this.original = null;
  }
}

/**
 * `bias: 'all'` on a layer LoRA does not wrap (e.g. the output head): its bias trains in place and is
 * saved as PEFT saves it, `base_model.model.<module>.bias`. The layer computes exactly as before
 * (its own call), with the adapter's bias while the adapter is active and enabled, and the base bias
 * otherwise. There is nothing to merge: the bias is already in the layer.
 */
export class LoraBiasLayer extends tfl.layers.Layer implements PeftLayer {
  static className = 'LoraBiasLayer';
  readonly isPeftLayer = true as const;
  readonly peftType = 'LORA';
  readonly baseLayer: tfl.layers.Layer;
  private record: TrainedBias | null;
  private active = false;
  private enabled = true;
  private merged: string[] = [];
  private readonly ownsBaseLayer: boolean;

  /**
   * Without `adapterName` and `variable` (a model saved with model.save() and loaded again) the layer
   * only passes through to the one it wraps, whose weights hold the biases as they were saved.
   */
  constructor(args: {
    layer: tfl.layers.Layer;
    name?: string;
    adapterName?: string;
    variable?: LayerVariable;
    ownsBaseLayer?: boolean;
  }) {
    super({ name: args.name ?? args.layer.name, trainable: true });
    this.baseLayer = args.layer;
    this.ownsBaseLayer = args.ownsBaseLayer ?? false;
    this.supportsMasking = true;
    this.record =
      args.adapterName !== undefined && args.variable
        ? new TrainedBias(args.variable, args.adapterName)
        : null;
    this.sync();
  }

  get moduleName(): string {
    return moduleKey(this.baseLayer.name);
  }

  /** The adapter that trains this bias. */
  get biasAdapter(): string | null {
    return this.record?.adapterName ?? null;
  }

  private sync(): void {
    this.record?.setApplied(this.enabled && (this.active || this.merged.includes(this.record.adapterName)));
  }

  override get trainableWeights(): LayerVariable[] {
    return this.record && this.record.variable.trainable ? [this.record.variable] : [];
  }

  override set trainableWeights(weights: LayerVariable[]) {
    super.trainableWeights = weights;
  }

  override get nonTrainableWeights(): LayerVariable[] {
    const trained = this.trainableWeights;
    return this.baseLayer.weights.filter((v) => !trained.includes(v));
  }

  override set nonTrainableWeights(weights: LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (!this.baseLayer.built) {
      this.baseLayer.build(inputShape);
      this.baseLayer.built = true;
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.baseLayer.computeOutputShape(inputShape);
  }

  override computeMask(
    inputs: tf.Tensor | tf.Tensor[],
    mask?: tf.Tensor | tf.Tensor[],
  ): tf.Tensor | tf.Tensor[] {
    return this.baseLayer.computeMask(inputs, mask);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    return this.baseLayer.call(inputs, kwargs);
  }

  adapterNames(): string[] {
    return this.record ? [this.record.adapterName] : [];
  }

  setActiveAdapters(names: readonly string[]): void {
    this.active = this.record !== null && names.includes(this.record.adapterName);
    this.sync();
  }

  setAdaptersEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.sync();
  }

  get mergedAdapters(): readonly string[] {
    return this.merged;
  }

  async findNonFiniteMerge(): Promise<string | null> {
    return null;
  }

  /** The trained bias is already in the layer; merging only records it (mergeAndUnload keeps it). */
  merge(names: readonly string[]): void {
    this.requireAdapter(names[0]);
    this.merged = [...names];
    this.sync();
  }

  unmerge(): void {
    this.merged = [];
    this.sync();
  }

  commitMerge(): void {
    if (this.record && this.merged.includes(this.record.adapterName)) this.record.commit();
    this.merged = [];
  }

  deleteAdapter(name: string): void {
    this.requireAdapter(name).restore();
    this.record = null;
  }

  /** Disposes only what this layer owns: a wrapped user layer's weights belong to the user's model. */
  override disposeWeights(): number {
    this.record?.dispose();
    if (!this.ownsBaseLayer) return 0;
    this.baseLayer.weights.forEach((v) => v.dispose());
    return this.baseLayer.weights.length;
  }

  adapterVariables(name: string): LayerVariable[] {
    return [this.requireAdapter(name).variable];
  }

  adapterState(name: string): Map<string, tf.Tensor> {
    return new Map([['bias', this.requireAdapter(name).trainedValue()]]);
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    return new Map([['bias', this.requireAdapter(name).variable.shape as number[]]]);
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    this.requireAdapter(name).setTrainedValue(state.get('bias')!);
  }

  private requireAdapter(name: string): TrainedBias {
    if (!this.record || this.record.adapterName !== name)
      throw new AdapterNameError(name, `does not train the bias of layer "${this.name}"`);
    return this.record;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      layer: { className: this.baseLayer.getClassName(), config: this.baseLayer.getConfig() },
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const layer = deserializeWrappedLayer(config);
    return new (cls as unknown as new (args: ConstructorParameters<typeof LoraBiasLayer>[0]) => T)({
      layer,
      name: config.name as string,
      ownsBaseLayer: true,
    });
  }
}
tf.serialization.registerClass(LoraBiasLayer);
