import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { AdapterNameError, frozenDense, moduleKey, type PeftLayer } from '@tfjs-peft/core';
import type { LoraInit } from './lora-config';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;

/** One adapter's settings inside a LoRA layer (serialised with the layer). */
export interface LoraAdapterSettings {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  useRslora: boolean;
  initLoraWeights: LoraInit;
  /** DoRA: a learned magnitude per output unit over the normalised adapted weight. */
  useDora?: boolean;
}

interface LoraAdapter extends LoraAdapterSettings {
  scale: number;
  /** DoRA's magnitude m [out], initialised to the column norms of W + scale·A·B. */
  magnitude: LayerVariable | null;
  /** [in, r] in tfjs layout (PEFT's lora_A.weight is its transpose). */
  loraA: LayerVariable | null;
  /** [r, out] (PEFT's lora_B.weight is its transpose). */
  loraB: LayerVariable | null;
}

/** What a Dense layer exposes at run time (its TypeScript fields are private). */
interface DenseInternals {
  kernel: LayerVariable;
  bias: LayerVariable | null;
  useBias: boolean;
  units: number;
  activation: { apply(x: tf.Tensor): tf.Tensor };
  built: boolean;
}

export interface LoraDenseArgs {
  layer: tfl.layers.Layer;
  name?: string;
  /** For deserialisation: adapters to create when the layer is built. */
  adapters?: Record<string, LoraAdapterSettings>;
  activeAdapters?: string[];
  /** True when the wrapped layer was created for this wrapper (a loaded model), so it is disposed with it. */
  ownsBaseLayer?: boolean;
}

/**
 * LoRA on a Dense layer: y = act(x·W + b + Σ_active scale · dropout(x)·A·B), W and b frozen and shared
 * with the user's layer. The base product runs through frozenDense, so W gets no gradient.
 */
export class LoraDense extends tfl.layers.Layer implements PeftLayer {
  static className = 'LoraDense';
  readonly isPeftLayer = true as const;
  readonly peftType = 'LORA';
  readonly baseLayer: tfl.layers.Layer;
  private readonly adapters = new Map<string, LoraAdapter>();
  private active: string[] = [];
  private enabled = true;
  private merged: string[] = [];
  /** The kernel as it was before merging; kept (not copied: tf.clone shares the data) for a bit-exact unmerge. */
  private unmergedKernel: tf.Tensor | null = null;
  private readonly ownsBaseLayer: boolean;

  constructor(args: LoraDenseArgs) {
    super({ name: args.name ?? args.layer.name, trainable: true });
    this.baseLayer = args.layer;
    this.ownsBaseLayer = args.ownsBaseLayer ?? false;
    this.supportsMasking = true;
    for (const [name, settings] of Object.entries(args.adapters ?? {})) this.addAdapter(name, settings);
    this.active = [...(args.activeAdapters ?? [])];
    if (this.base.built) this.createPendingWeights();
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

  // ------------------------------------------------------------ weights

  override get trainableWeights(): LayerVariable[] {
    const own = super.trainableWeights;
    return [...own, ...this.baseLayer.trainableWeights];
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

  /** Registers an adapter; its variables are created now if the base layer is built, else at build(). */
  addAdapter(name: string, settings: LoraAdapterSettings): void {
    if (this.adapters.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    const scale = settings.useRslora
      ? settings.loraAlpha / Math.sqrt(settings.r)
      : settings.loraAlpha / settings.r;
    this.adapters.set(name, { ...settings, scale, loraA: null, loraB: null, magnitude: null });
    if (this.base.built) this.createPendingWeights();
  }

  private createPendingWeights(): void {
    const inputDim = this.inputDim;
    const units = this.units;
    for (const [name, adapter] of this.adapters) {
      if (adapter.loraA) continue;
      const { r, initLoraWeights } = adapter;
      // PEFT's initialisation, transposed to tfjs layout: A = kaiming_uniform(a=√5) ~ U(±1/√in).
      const aInit =
        initLoraWeights === 'gaussian'
          ? tfl.initializers.randomNormal({ mean: 0, stddev: 1 / r })
          : tfl.initializers.randomUniform({
              minval: -1 / Math.sqrt(inputDim),
              maxval: 1 / Math.sqrt(inputDim),
            });
      const bInit =
        initLoraWeights === false
          ? tfl.initializers.randomUniform({ minval: -1 / Math.sqrt(r), maxval: 1 / Math.sqrt(r) })
          : tfl.initializers.zeros();
      adapter.loraA = this.addAdapterWeight(`lora_A_${name}`, [inputDim, r], aInit);
      adapter.loraB = this.addAdapterWeight(`lora_B_${name}`, [r, units], bInit);
      if (adapter.useDora) {
        adapter.magnitude = this.addAdapterWeight(`lora_magnitude_${name}`, [units], tfl.initializers.ones());
        // m starts as ‖W + scale·A·B‖ per output unit, so a new DoRA adapter equals its LoRA part.
        const norms = tf.tidy(() => this.columnNorms(this.base.kernel.read(), adapter));
        adapter.magnitude.write(norms);
        norms.dispose();
      }
    }
  }

  /**
   * Adapter weights are created either when the adapter is added (outside any name scope) or in
   * build() (inside this layer's scope, when a saved model is loaded). The name a saved model records
   * must be the same both ways, so it is set explicitly to `<layer>/<weight>`.
   */
  private addAdapterWeight(
    weightName: string,
    shape: number[],
    initializer: ReturnType<typeof tfl.initializers.zeros>,
  ) {
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

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const base = this.base;
      const kernel = !this.enabled && this.unmergedKernel ? this.unmergedKernel : base.kernel.read();
      const bias = base.useBias && base.bias ? base.bias.read() : null;
      const running = this.enabled ? this.active.filter((n) => !this.merged.includes(n)) : [];
      const training = kwargs?.training === true;
      if (!running.some((n) => this.adapters.get(n)!.useDora)) {
        let y = frozenDense(x, kernel, bias);
        for (const name of running) y = tf.add(y, this.loraBranch(x, this.adapters.get(name)!, training));
        return base.activation.apply(y);
      }
      return base.activation.apply(this.forwardWithDora(x, kernel, bias, running, training));
    });
  }

  /**
   * DoRA (Liu et al. 2024), as Hugging Face PEFT computes it: with W' = W + s·A·B and its per-unit
   * norm n (detached from the graph, as in the paper), an adapter adds (m/n − 1)·x·W + (m/n)·s·x·A·B,
   * so that x·W plus that is (m/n)·x·W'. The bias is not rescaled.
   */
  private forwardWithDora(
    x: tf.Tensor,
    kernel: tf.Tensor,
    bias: tf.Tensor | null,
    running: string[],
    training: boolean,
  ): tf.Tensor {
    const flat = tf.reshape(x, [-1, this.inputDim]);
    const product = frozenDense(flat, kernel, null);
    let y = product;
    for (const name of running) {
      const adapter = this.adapters.get(name)!;
      const dropped = training && adapter.loraDropout > 0 ? tf.dropout(flat, adapter.loraDropout) : flat;
      const update = tf.mul(
        tf.matMul(tf.matMul(dropped, adapter.loraA!.read()), adapter.loraB!.read()),
        adapter.scale,
      );
      if (!adapter.useDora) {
        y = tf.add(y, update);
        continue;
      }
      const factor = tf.div(adapter.magnitude!.read(), detach(this.columnNorms(kernel, adapter)));
      const droppedProduct = dropped === flat ? product : frozenDense(dropped, kernel, null);
      y = tf.add(y, tf.add(tf.mul(tf.sub(factor, 1), droppedProduct), tf.mul(factor, update)));
    }
    if (bias) y = tf.add(y, bias);
    return tf.reshape(y, [...x.shape.slice(0, -1), this.units]);
  }

  /** ‖W + scale·A·B‖ over the input axis: one norm per output unit ([out]). */
  private columnNorms(kernel: tf.Tensor, adapter: LoraAdapter): tf.Tensor1D {
    const adapted = tf.add(
      kernel,
      tf.mul(tf.matMul(adapter.loraA!.read(), adapter.loraB!.read()), adapter.scale),
    );
    return tf.sqrt(tf.sum(tf.square(adapted), 0)) as tf.Tensor1D;
  }

  private loraBranch(x: tf.Tensor, adapter: LoraAdapter, training: boolean): tf.Tensor {
    let flat = tf.reshape(x, [-1, this.inputDim]);
    if (training && adapter.loraDropout > 0) flat = tf.dropout(flat, adapter.loraDropout);
    const update = tf.mul(
      tf.matMul(tf.matMul(flat, adapter.loraA!.read()), adapter.loraB!.read()),
      adapter.scale,
    );
    return tf.reshape(update, [...x.shape.slice(0, -1), this.units]);
  }

  /** Disposes only what this layer owns: a wrapped user layer's weights belong to the user's model. */
  override disposeWeights(): number {
    const own = [...this.adapters.values()]
      .flatMap((a) => [a.loraA, a.loraB, a.magnitude])
      .filter((v): v is LayerVariable => v !== null);
    if (this.ownsBaseLayer) own.push(...this.baseLayer.weights);
    own.forEach((v) => v.dispose());
    this.unmergedKernel?.dispose();
    this.unmergedKernel = null;
    return own.length;
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
   * What the adapter adds to the kernel, in tfjs layout [in, out]: scale·A·B for LoRA; for DoRA
   * (m/n − 1)·W + (m/n)·scale·A·B, the column-wise rescaling of W' = W + scale·A·B.
   */
  deltaWeight(name: string): tf.Tensor2D {
    const adapter = this.requireAdapter(name);
    return tf.tidy(() => {
      const update = tf.mul(tf.matMul(adapter.loraA!.read(), adapter.loraB!.read()), adapter.scale);
      if (!adapter.useDora) return update as tf.Tensor2D;
      const kernel = this.unmergedKernel ?? this.base.kernel.read();
      const factor = tf.div(adapter.magnitude!.read(), this.columnNorms(kernel, adapter));
      return tf.add(tf.mul(tf.sub(factor, 1), kernel), tf.mul(factor, update)) as tf.Tensor2D;
    });
  }

  private mergedKernel(names: readonly string[]): tf.Tensor {
    return tf.tidy(() => {
      let sum = this.base.kernel.read() as tf.Tensor;
      for (const name of names) sum = tf.add(sum, this.deltaWeight(name));
      return sum;
    });
  }

  async findNonFiniteMerge(names: readonly string[]): Promise<string | null> {
    const finite = tf.tidy(() => tf.all(tf.isFinite(this.mergedKernel(names))));
    const ok = (await finite.data())[0] === 1;
    finite.dispose();
    return ok ? null : 'the kernel';
  }

  merge(names: readonly string[]): void {
    const kernel = this.base.kernel;
    const merged = this.mergedKernel(names);
    if (this.unmergedKernel === null) this.unmergedKernel = tf.keep(tf.clone(kernel.read()));
    kernel.write(merged);
    merged.dispose();
    this.merged.push(...names);
  }

  unmerge(): void {
    if (this.unmergedKernel === null) return;
    this.base.kernel.write(this.unmergedKernel);
    this.unmergedKernel.dispose();
    this.unmergedKernel = null;
    this.merged = [];
  }

  commitMerge(): void {
    this.unmergedKernel?.dispose();
    this.unmergedKernel = null;
    this.merged = [];
  }

  deleteAdapter(name: string): void {
    const adapter = this.requireAdapter(name);
    if (this.merged.includes(name))
      throw new AdapterNameError(name, `is merged into layer "${this.name}"; unmerge first`);
    const own = [adapter.loraA, adapter.loraB, adapter.magnitude].filter(
      (v): v is LayerVariable => v !== null,
    );
    // The raw list, not the getter: it also holds variables that setAdapter froze.
    const raw = (this as unknown as { _trainableWeights: LayerVariable[] })._trainableWeights;
    (this as unknown as { _trainableWeights: LayerVariable[] })._trainableWeights = raw.filter(
      (w) => !own.includes(w),
    );
    own.forEach((v) => v.dispose());
    this.adapters.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  adapterVariables(name: string): LayerVariable[] {
    const adapter = this.requireAdapter(name);
    return [adapter.loraA!, adapter.loraB!, ...(adapter.magnitude ? [adapter.magnitude] : [])];
  }

  adapterSettings(name: string): LoraAdapterSettings & { scale: number } {
    const { r, loraAlpha, loraDropout, useRslora, initLoraWeights, useDora, scale } =
      this.requireAdapter(name);
    return { r, loraAlpha, loraDropout, useRslora, initLoraWeights, useDora, scale };
  }

  adapterState(name: string): Map<string, tf.Tensor> {
    const adapter = this.requireAdapter(name);
    const state = new Map<string, tf.Tensor>([
      ['lora_A.weight', tf.transpose(adapter.loraA!.read())],
      ['lora_B.weight', tf.transpose(adapter.loraB!.read())],
    ]);
    if (adapter.magnitude) state.set('lora_magnitude_vector', tf.clone(adapter.magnitude.read()));
    return state;
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    const { r, useDora } = this.requireAdapter(name);
    const shapes = new Map([
      ['lora_A.weight', [r, this.inputDim]],
      ['lora_B.weight', [this.units, r]],
    ]);
    if (useDora) shapes.set('lora_magnitude_vector', [this.units]);
    return shapes;
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    const adapter = this.requireAdapter(name);
    tf.tidy(() => {
      adapter.loraA!.write(tf.transpose(state.get('lora_A.weight')!));
      adapter.loraB!.write(tf.transpose(state.get('lora_B.weight')!));
      if (adapter.magnitude) adapter.magnitude.write(state.get('lora_magnitude_vector')!);
    });
  }

  private requireAdapter(name: string): LoraAdapter {
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
    const inner = config.layer as { className: string; config: tf.serialization.ConfigDict };
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[inner.className];
    if (!entry) throw new Error(`LoraDense: unknown wrapped layer class ${inner.className}`);
    const [innerClass, innerFromConfig] = entry;
    const layer = innerFromConfig(innerClass, inner.config) as unknown as tfl.layers.Layer;
    return new (cls as unknown as new (args: LoraDenseArgs) => T)({
      layer,
      name: config.name as string,
      adapters: config.adapters as unknown as Record<string, LoraAdapterSettings>,
      activeAdapters: config.activeAdapters as string[],
      ownsBaseLayer: true,
    });
  }
}
tf.serialization.registerClass(LoraDense);

/** Identity forward, no gradient: DoRA's weight norm is treated as a constant (Liu et al., §4.3). */
const detach = tf.customGrad(((t: tf.Tensor) => ({
  value: tf.clone(t),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]);
