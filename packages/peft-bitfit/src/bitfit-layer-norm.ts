import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { releaseLayerWeights, AdapterNameError, moduleKey, type PeftLayer } from '@tfjs-peft/core';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;

/** Layer-norm classes whose `gamma`/`beta` BitFit can train: tfjs's and @tfjs-peft/models'. */
export const LAYER_NORM_CLASSES = ['LayerNormalization', 'LayerNorm'] as const;

/** Both classes keep their scale and offset in `gamma` and `beta` (null when disabled) and read them in call(). */
interface LayerNormInternals {
  gamma: { read(): tf.Tensor } | null;
  beta: { read(): tf.Tensor } | null;
  built: boolean;
}

type Param = 'gamma' | 'beta';
/** PyTorch's LayerNorm names: gamma is `weight`, beta is `bias`. */
const TORCH_NAME: Record<Param, string> = { gamma: 'weight', beta: 'bias' };

export interface BitFitLayerNormArgs {
  layer: tfl.layers.Layer;
  name?: string;
  adapters?: string[];
  activeAdapters?: string[];
  ownsBaseLayer?: boolean;
}

/**
 * BitFit's optional layer-norm part: per-adapter copies of gamma and beta, initialised to the base
 * values. The base layer computes as always — during the call its `gamma`/`beta` fields point at the
 * adapter's values — so a new adapter is bit-identical to the base. Saved as PEFT names a torch
 * LayerNorm: `<module>.weight` (gamma) and `<module>.bias` (beta).
 */
export class BitFitLayerNorm extends tfl.layers.Layer implements PeftLayer {
  static className = 'BitFitLayerNorm';
  readonly isPeftLayer = true as const;
  readonly peftType = 'BITFIT';
  readonly baseLayer: tfl.layers.Layer;
  private readonly copies = new Map<string, Partial<Record<Param, LayerVariable>> | null>();
  private active: string[] = [];
  private enabled = true;
  private merged: string[] = [];
  private unmergedValues: Partial<Record<Param, tf.Tensor>> | null = null;
  private readonly ownsBaseLayer: boolean;

  constructor(args: BitFitLayerNormArgs) {
    super({ name: args.name ?? args.layer.name, trainable: true });
    this.baseLayer = args.layer;
    this.ownsBaseLayer = args.ownsBaseLayer ?? false;
    this.supportsMasking = true;
    for (const name of args.adapters ?? []) this.addAdapter(name);
    this.active = [...(args.activeAdapters ?? [])];
  }

  private get base(): LayerNormInternals {
    return this.baseLayer as unknown as LayerNormInternals;
  }

  /** The parameters this layer norm has (tfjs's LayerNormalization may have `center`/`scale` off). */
  private get params(): Param[] {
    return (['gamma', 'beta'] as const).filter((p) => this.base[p] != null);
  }

  get moduleName(): string {
    return moduleKey(this.baseLayer.name);
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

  addAdapter(name: string): void {
    if (this.copies.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    this.copies.set(name, null);
    if (this.base.built) this.createPendingWeights();
  }

  private createPendingWeights(): void {
    for (const [name, copy] of this.copies) {
      if (copy) continue;
      const created: Partial<Record<Param, LayerVariable>> = {};
      for (const param of this.params) {
        const source = this.unmergedValues?.[param] ?? this.base[param]!.read();
        const variable = this.addWeight(
          `${param}_${name}`,
          source.shape,
          'float32',
          tfl.initializers.zeros(),
          undefined,
          true,
        );
        (variable as unknown as { originalName: string }).originalName = `${this.name}/${param}_${name}`;
        variable.write(source);
        created[param] = variable;
      }
      this.copies.set(name, created);
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

  private effective(param: Param): tf.Tensor {
    const current = this.base[param]!.read();
    if (!this.enabled) return this.unmergedValues?.[param] ?? current;
    const pending = this.active.filter((n) => !this.merged.includes(n));
    if (pending.length === 0) return current;
    if (pending.length === 1 && this.merged.length === 0) return this.requireCopy(pending[0])[param]!.read();
    const original = this.unmergedValues?.[param] ?? current;
    let sum: tf.Tensor = current;
    for (const name of pending) sum = tf.add(sum, tf.sub(this.requireCopy(name)[param]!.read(), original));
    return sum;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    return tf.tidy(() => {
      const base = this.base;
      const saved = { gamma: base.gamma, beta: base.beta };
      try {
        for (const param of this.params) {
          const value = this.effective(param);
          base[param] = { read: () => value };
        }
        return this.baseLayer.call(inputs, kwargs);
      } finally {
        base.gamma = saved.gamma;
        base.beta = saved.beta;
      }
    });
  }

  override disposeWeights(): number {
    const own = [...this.copies.values()].flatMap((c) => (c ? Object.values(c) : []));
    if (this.ownsBaseLayer) own.push(...this.baseLayer.weights);
    own.forEach((v) => v.dispose());
    Object.values(this.unmergedValues ?? {}).forEach((t) => t.dispose());
    this.unmergedValues = null;
    return own.length;
  }

  adapterNames(): string[] {
    return [...this.copies.keys()];
  }

  setActiveAdapters(names: readonly string[]): void {
    this.active = names.filter((n) => this.copies.has(n));
  }

  setAdaptersEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  get mergedAdapters(): readonly string[] {
    return this.merged;
  }

  private mergedValue(param: Param, names: readonly string[]): tf.Tensor {
    return tf.tidy(() => {
      const current = this.base[param]!.read();
      if (names.length === 1 && this.merged.length === 0)
        return tf.clone(this.requireCopy(names[0])[param]!.read());
      const original = this.unmergedValues?.[param] ?? current;
      let sum: tf.Tensor = current;
      for (const name of names) sum = tf.add(sum, tf.sub(this.requireCopy(name)[param]!.read(), original));
      return sum;
    });
  }

  async findNonFiniteMerge(names: readonly string[]): Promise<string | null> {
    for (const param of this.params) {
      const finite = tf.tidy(() => tf.all(tf.isFinite(this.mergedValue(param, names))));
      const ok = (await finite.data())[0] === 1;
      finite.dispose();
      if (!ok) return `the ${param}`;
    }
    return null;
  }

  merge(names: readonly string[]): void {
    names.forEach((n) => this.requireCopy(n));
    const values = this.params.map((p) => [p, this.mergedValue(p, names)] as const);
    if (this.unmergedValues === null) {
      this.unmergedValues = {};
      for (const p of this.params) this.unmergedValues[p] = tf.keep(tf.clone(this.base[p]!.read()));
    }
    for (const [p, value] of values) {
      (this.base[p] as LayerVariable).write(value);
      value.dispose();
    }
    this.merged.push(...names);
  }

  unmerge(): void {
    if (this.unmergedValues === null) return;
    for (const [p, value] of Object.entries(this.unmergedValues) as Array<[Param, tf.Tensor]>) {
      (this.base[p] as LayerVariable).write(value);
      value.dispose();
    }
    this.unmergedValues = null;
    this.merged = [];
  }

  commitMerge(): void {
    Object.values(this.unmergedValues ?? {}).forEach((t) => t.dispose());
    this.unmergedValues = null;
    this.merged = [];
  }

  deleteAdapter(name: string): void {
    const copy = this.copies.get(name);
    if (copy === undefined) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    if (this.merged.includes(name))
      throw new AdapterNameError(name, `is merged into layer "${this.name}"; unmerge first`);
    releaseLayerWeights(this, copy ? Object.values(copy) : []);
    this.copies.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  adapterVariables(name: string): LayerVariable[] {
    return Object.values(this.requireCopy(name));
  }

  adapterState(name: string): Map<string, tf.Tensor> {
    const copy = this.requireCopy(name);
    return new Map(this.params.map((p) => [TORCH_NAME[p], tf.clone(copy[p]!.read())]));
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    const copy = this.requireCopy(name);
    return new Map(this.params.map((p) => [TORCH_NAME[p], copy[p]!.shape as number[]]));
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    const copy = this.requireCopy(name);
    for (const p of this.params) copy[p]!.write(state.get(TORCH_NAME[p])!);
  }

  private requireCopy(name: string): Partial<Record<Param, LayerVariable>> {
    const copy = this.copies.get(name);
    if (copy === undefined) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    if (copy === null) throw new AdapterNameError(name, `layer "${this.name}" is not built yet`);
    return copy;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      layer: { className: this.baseLayer.getClassName(), config: this.baseLayer.getConfig() },
      adapters: [...this.copies.keys()],
      activeAdapters: [...this.active],
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const inner = config.layer as { className: string; config: tf.serialization.ConfigDict };
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[inner.className];
    if (!entry) throw new Error(`BitFitLayerNorm: unknown wrapped layer class ${inner.className}`);
    const [innerClass, innerFromConfig] = entry;
    const layer = innerFromConfig(innerClass, inner.config) as unknown as tfl.layers.Layer;
    return new (cls as unknown as new (args: BitFitLayerNormArgs) => T)({
      layer,
      name: config.name as string,
      adapters: config.adapters as string[],
      activeAdapters: config.activeAdapters as string[],
      ownsBaseLayer: true,
    });
  }
}
tf.serialization.registerClass(BitFitLayerNorm);
