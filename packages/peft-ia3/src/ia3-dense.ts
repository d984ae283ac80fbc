import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { releaseLayerWeights } from '@tfjs-peft/core';
import { AdapterNameError, frozenDense, moduleKey, type PeftLayer } from '@tfjs-peft/core';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;

/** One adapter's settings inside an IA³ layer (serialised with the layer). */
export interface IA3AdapterSettings {
  /** true: the vector scales the layer's input ([in]); false: its output ([out]), bias included. */
  feedforward: boolean;
  initIa3Weights: boolean;
}

interface IA3Adapter extends IA3AdapterSettings {
  /** [in] (feedforward) or [out]; PEFT saves it as [1, in] or [out, 1]. */
  vector: LayerVariable | null;
}

interface DenseInternals {
  kernel: LayerVariable;
  bias: LayerVariable | null;
  useBias: boolean;
  units: number;
  activation: { apply(x: tf.Tensor): tf.Tensor };
  built: boolean;
}

export interface IA3DenseArgs {
  layer: tfl.layers.Layer;
  name?: string;
  adapters?: Record<string, IA3AdapterSettings>;
  activeAdapters?: string[];
  ownsBaseLayer?: boolean;
}

/**
 * IA³ on a Dense layer, as Hugging Face PEFT's `IA3Layer`: `act(((x ⊙ l_in)·W + b) ⊙ l_out)` where
 * `l_in` is the product of the active feed-forward adapters' vectors and `l_out` that of the others.
 * W and b are frozen and shared with the user's layer; the product runs through frozenDense (no dW).
 */
export class IA3Dense extends tfl.layers.Layer implements PeftLayer {
  static className = 'IA3Dense';
  readonly isPeftLayer = true as const;
  readonly peftType = 'IA3';
  readonly baseLayer: tfl.layers.Layer;
  private readonly adapters = new Map<string, IA3Adapter>();
  private active: string[] = [];
  private enabled = true;
  private merged: string[] = [];
  /** Kernel and bias before merging, kept (tf.clone shares the data) for a bit-exact unmerge. */
  private unmergedWeights: { kernel: tf.Tensor; bias: tf.Tensor | null } | null = null;
  private readonly ownsBaseLayer: boolean;

  constructor(args: IA3DenseArgs) {
    super({ name: args.name ?? args.layer.name, trainable: true });
    this.baseLayer = args.layer;
    this.ownsBaseLayer = args.ownsBaseLayer ?? false;
    this.supportsMasking = true;
    for (const [name, settings] of Object.entries(args.adapters ?? {})) this.addAdapter(name, settings);
    this.active = [...(args.activeAdapters ?? [])];
  }

  private get base(): DenseInternals {
    return this.baseLayer as unknown as DenseInternals;
  }

  get moduleName(): string {
    return moduleKey(this.baseLayer.name);
  }

  get inputDim(): number {
    return this.base.kernel.shape[0] as number;
  }

  get units(): number {
    return this.base.units;
  }

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

  addAdapter(name: string, settings: IA3AdapterSettings): void {
    if (this.adapters.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    this.adapters.set(name, {
      feedforward: settings.feedforward,
      initIa3Weights: settings.initIa3Weights,
      vector: null,
    });
    if (this.base.built) this.createPendingWeights();
  }

  private createPendingWeights(): void {
    for (const [name, adapter] of this.adapters) {
      if (adapter.vector) continue;
      const length = adapter.feedforward ? this.inputDim : this.units;
      const init = adapter.initIa3Weights
        ? tfl.initializers.ones()
        : tfl.initializers.randomNormal({ mean: 0, stddev: 1 });
      const vector = this.addWeight(`ia3_l_${name}`, [length], 'float32', init, undefined, true);
      (vector as unknown as { originalName: string }).originalName = `${this.name}/ia3_l_${name}`;
      adapter.vector = vector;
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

  /** Product of the vectors of `names` that scale the input (feedforward) or the output; null if none. */
  private scaling(names: readonly string[], feedforward: boolean): tf.Tensor | null {
    let product: tf.Tensor | null = null;
    for (const name of names) {
      const adapter = this.adapters.get(name)!;
      if (adapter.feedforward !== feedforward) continue;
      const v = adapter.vector!.read();
      product = product === null ? v : tf.mul(product, v);
    }
    return product;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      let x = Array.isArray(inputs) ? inputs[0] : inputs;
      const base = this.base;
      const original = !this.enabled ? this.unmergedWeights : null;
      const kernel = original ? original.kernel : base.kernel.read();
      const bias = original ? original.bias : base.useBias && base.bias ? base.bias.read() : null;
      const pending = this.enabled ? this.active.filter((n) => !this.merged.includes(n)) : [];
      const inputScale = this.scaling(pending, true);
      if (inputScale) x = tf.mul(x, inputScale);
      let y = frozenDense(x, kernel, bias);
      const outputScale = this.scaling(pending, false);
      if (outputScale) y = tf.mul(y, outputScale);
      return base.activation.apply(y);
    });
  }

  override disposeWeights(): number {
    const own = [...this.adapters.values()]
      .map((a) => a.vector)
      .filter((v): v is LayerVariable => v !== null);
    if (this.ownsBaseLayer) own.push(...this.baseLayer.weights);
    own.forEach((v) => v.dispose());
    this.disposeUnmerged();
    return own.length;
  }

  private disposeUnmerged(): void {
    if (!this.unmergedWeights) return;
    this.unmergedWeights.kernel.dispose();
    this.unmergedWeights.bias?.dispose();
    this.unmergedWeights = null;
  }

  // ------------------------------------------------------------ PeftLayer

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  setActiveAdapters(names: readonly string[]): void {
    this.active = names.filter((n) => this.adapters.has(n));
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

  /**
   * The kernel and bias with `names` folded in, as PEFT merges: output scaling `W ← W·diag(l)`,
   * `b ← b ⊙ l`; input scaling `W ← diag(l)·W` (tfjs layout [in, out]), bias unchanged.
   */
  private mergedWeights(names: readonly string[]): { kernel: tf.Tensor; bias: tf.Tensor | null } {
    names.forEach((n) => this.requireAdapter(n));
    const [kernel, bias] = tf.tidy(() => {
      let kernel = this.base.kernel.read() as tf.Tensor;
      let bias = this.base.useBias && this.base.bias ? (this.base.bias.read() as tf.Tensor) : null;
      const inputScale = this.scaling(names, true);
      if (inputScale) kernel = tf.mul(kernel, tf.reshape(inputScale, [-1, 1]));
      const outputScale = this.scaling(names, false);
      if (outputScale) {
        kernel = tf.mul(kernel, tf.reshape(outputScale, [1, -1]));
        if (bias) bias = tf.mul(bias, outputScale);
      }
      // Fresh tensors, so the caller owns them whatever was scaled.
      return bias ? [tf.clone(kernel), tf.clone(bias)] : [tf.clone(kernel)];
    });
    return { kernel, bias: bias ?? null };
  }

  async findNonFiniteMerge(names: readonly string[]): Promise<string | null> {
    const { kernel, bias } = this.mergedWeights(names);
    const checks: Array<[string, tf.Tensor]> = [['the kernel', kernel]];
    if (bias) checks.push(['the bias', bias]);
    try {
      for (const [what, t] of checks) {
        const finite = tf.tidy(() => tf.all(tf.isFinite(t)));
        const ok = (await finite.data())[0] === 1;
        finite.dispose();
        if (!ok) return what;
      }
      return null;
    } finally {
      kernel.dispose();
      bias?.dispose();
    }
  }

  merge(names: readonly string[]): void {
    const base = this.base;
    const { kernel, bias } = this.mergedWeights(names);
    if (this.unmergedWeights === null) {
      this.unmergedWeights = {
        kernel: tf.keep(tf.clone(base.kernel.read())),
        bias: bias && base.bias ? tf.keep(tf.clone(base.bias.read())) : null,
      };
    }
    base.kernel.write(kernel);
    kernel.dispose();
    if (bias) {
      base.bias!.write(bias);
      bias.dispose();
    }
    this.merged.push(...names);
  }

  unmerge(): void {
    if (this.unmergedWeights === null) return;
    this.base.kernel.write(this.unmergedWeights.kernel);
    if (this.unmergedWeights.bias) this.base.bias!.write(this.unmergedWeights.bias);
    this.disposeUnmerged();
    this.merged = [];
  }

  commitMerge(): void {
    this.disposeUnmerged();
    this.merged = [];
  }

  deleteAdapter(name: string): void {
    const adapter = this.adapters.get(name);
    if (!adapter) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    if (this.merged.includes(name))
      throw new AdapterNameError(name, `is merged into layer "${this.name}"; unmerge first`);
    if (adapter.vector) releaseLayerWeights(this, [adapter.vector]);
    this.adapters.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  adapterVariables(name: string): LayerVariable[] {
    return [this.requireAdapter(name).vector!];
  }

  adapterSettings(name: string): IA3AdapterSettings {
    const { feedforward, initIa3Weights } = this.requireAdapter(name);
    return { feedforward, initIa3Weights };
  }

  private savedShape(adapter: IA3Adapter): number[] {
    return adapter.feedforward ? [1, this.inputDim] : [this.units, 1];
  }

  /** PEFT's key `<module>.ia3_l`: [out, 1] for output scaling, [1, in] for feed-forward (no `.weight`). */
  adapterState(name: string): Map<string, tf.Tensor> {
    const adapter = this.requireAdapter(name);
    return new Map([['ia3_l', tf.reshape(adapter.vector!.read(), this.savedShape(adapter))]]);
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    return new Map([['ia3_l', this.savedShape(this.requireAdapter(name))]]);
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    const adapter = this.requireAdapter(name);
    tf.tidy(() => {
      adapter.vector!.write(tf.reshape(state.get('ia3_l')!, [-1]));
    });
  }

  private requireAdapter(name: string): IA3Adapter {
    const adapter = this.adapters.get(name);
    if (!adapter) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    if (!adapter.vector) throw new AdapterNameError(name, `layer "${this.name}" is not built yet`);
    return adapter;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const adapters: Record<string, IA3AdapterSettings> = {};
    for (const [name, { feedforward, initIa3Weights }] of this.adapters)
      adapters[name] = { feedforward, initIa3Weights };
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
    const inner = config.layer as { className: string; config: tf.serialization.ConfigDict };
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[inner.className];
    if (!entry) throw new Error(`IA3Dense: unknown wrapped layer class ${inner.className}`);
    const [innerClass, innerFromConfig] = entry;
    const layer = innerFromConfig(innerClass, inner.config) as unknown as tfl.layers.Layer;
    return new (cls as unknown as new (args: IA3DenseArgs) => T)({
      layer,
      name: config.name as string,
      adapters: config.adapters as unknown as Record<string, IA3AdapterSettings>,
      activeAdapters: config.activeAdapters as string[],
      ownsBaseLayer: true,
    });
  }
}
tf.serialization.registerClass(IA3Dense);
