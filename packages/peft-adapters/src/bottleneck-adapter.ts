import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { releaseLayerWeights } from '@tfjs-peft/core';
import { AdapterNameError, moduleKey, type PeftLayer } from '@tfjs-peft/core';
import type { BottleneckInit, BottleneckLayerNorm, BottleneckNonLinearity } from './bottleneck-config';
import { AdapterNotMergeableError } from './bottleneck-errors';

const NOT_LINEAR =
  'up(act(down(h))) is not linear; keep them unmerged, or use LoRA/IA³ for mergeable adapters';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;
type Initializer = ReturnType<typeof tfl.initializers.zeros>;

/**
 * 'sequential': one input h, output h + Δ(h) (Houlsby, Pfeiffer, `{ after }`).
 * 'parallel': inputs [h, x] (h the feed-forward output, x the feed-forward input), output h + Δ(x).
 * The pass-through tensor is always the first input, so removing the layer keeps h.
 */
export type BottleneckAdapterKind = 'sequential' | 'parallel';

/** How several active adapters of one layer combine: in sequence (in the order given) or averaged. */
export type BottleneckComposition = 'stack' | 'average';

/** One adapter's settings inside a bottleneck layer (serialised with the layer). */
export interface BottleneckAdapterSettings {
  /** Bottleneck width (the down-projection's output size). */
  bottleneck: number;
  nonLinearity: BottleneckNonLinearity;
  scaling: number | 'learned';
  layerNorm: BottleneckLayerNorm;
  initWeights: BottleneckInit;
}

interface BottleneckWeights extends BottleneckAdapterSettings {
  /** [width, bottleneck], tfjs layout (PEFT-style adapter_down.weight is its transpose). */
  downKernel: LayerVariable;
  downBias: LayerVariable;
  /** [bottleneck, width]. */
  upKernel: LayerVariable;
  upBias: LayerVariable;
  normGamma: LayerVariable | null;
  normBeta: LayerVariable | null;
  learnedScaling: LayerVariable | null;
}

export interface BottleneckAdapterArgs {
  /** Layer name; the injector uses `<target>/adapter` or `<target>/parallel_adapter`. */
  name: string;
  kind: BottleneckAdapterKind;
  /** The layer this adapter follows; its module path names the saved tensors. */
  targetLayerName: string;
  /** Size of the last axis of the adapted tensor (units of a Dense, channels of a conv). */
  width: number;
  adapters?: Record<string, BottleneckAdapterSettings>;
  activeAdapters?: string[];
  composition?: BottleneckComposition;
}

const LAYER_NORM_EPSILON = 1e-5;

/**
 * A bottleneck adapter inserted into the graph (PeftLayer with `baseLayer: null`): for each active
 * adapter, h + scaling · up(act(down(LN_before?(x)))), then LN_after? — the residual around the
 * bottleneck. It holds one set of weights per named adapter; several active adapters are stacked
 * (default) or averaged. Down and up projections act on the last axis.
 */
export class BottleneckAdapter extends tfl.layers.Layer implements PeftLayer {
  static className = 'BottleneckAdapter';
  readonly isPeftLayer = true as const;
  readonly mergeable = false;
  readonly peftType = 'BOTTLENECK';
  readonly baseLayer = null;
  readonly kind: BottleneckAdapterKind;
  readonly targetLayerName: string;
  readonly width: number;
  private readonly adapters = new Map<string, BottleneckWeights>();
  private active: string[] = [];
  private enabled = true;
  private compositionMode: BottleneckComposition;

  constructor(args: BottleneckAdapterArgs) {
    super({ name: args.name, trainable: true });
    this.kind = args.kind;
    this.targetLayerName = args.targetLayerName;
    this.width = args.width;
    this.compositionMode = args.composition ?? 'stack';
    this.supportsMasking = true;
    for (const [name, settings] of Object.entries(args.adapters ?? {})) this.addAdapter(name, settings);
    this.active = (args.activeAdapters ?? []).filter((n) => this.adapters.has(n));
    // Weights exist from construction (the width is known), so nothing is left for build().
    this.built = true;
  }

  get moduleName(): string {
    return moduleKey(this.targetLayerName);
  }

  get composition(): BottleneckComposition {
    return this.compositionMode;
  }

  setComposition(composition: BottleneckComposition): void {
    if (composition !== 'stack' && composition !== 'average') {
      throw new AdapterNameError(String(composition), "is not a composition: expected 'stack' or 'average'");
    }
    this.compositionMode = composition;
  }

  // ------------------------------------------------------------ weights

  addAdapter(name: string, settings: BottleneckAdapterSettings): void {
    if (this.adapters.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    const { bottleneck, initWeights, layerNorm, scaling } = settings;
    const width = this.width;
    const uniform = (fanIn: number) =>
      tfl.initializers.randomUniform({ minval: -1 / Math.sqrt(fanIn), maxval: 1 / Math.sqrt(fanIn) });
    const random = initWeights === 'random';
    const small = tfl.initializers.randomUniform({ minval: -0.1, maxval: 0.1 });
    const zeros = tfl.initializers.zeros();
    const ones = tfl.initializers.ones();
    const created: LayerVariable[] = [];
    const add = (weight: string, shape: number[], init: Initializer) => {
      const variable = this.addWeight(`${weight}_${name}`, shape, 'float32', init, undefined, true);
      // The same name whether created here (outside any scope) or while a saved model is loaded.
      (variable as unknown as { originalName: string }).originalName = `${this.name}/${weight}_${name}`;
      created.push(variable);
      return variable;
    };
    // Down: Kaiming-uniform as torch's Linear (bound 1/√fan_in); up: zeros, so a new adapter is the identity.
    this.adapters.set(name, {
      ...settings,
      downKernel: add('adapter_down_kernel', [width, bottleneck], uniform(width)),
      downBias: add('adapter_down_bias', [bottleneck], random ? small : zeros),
      upKernel: add('adapter_up_kernel', [bottleneck, width], random ? uniform(bottleneck) : zeros),
      upBias: add('adapter_up_bias', [width], random ? small : zeros),
      normGamma: layerNorm ? add(`adapter_norm_${layerNorm}_gamma`, [width], ones) : null,
      normBeta: layerNorm ? add(`adapter_norm_${layerNorm}_beta`, [width], zeros) : null,
      learnedScaling: scaling === 'learned' ? add('adapter_scaling', [1], ones) : null,
    });
  }

  override build(): void {
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (this.kind === 'parallel' ? (inputShape as tfl.Shape[])[0] : inputShape) as tfl.Shape;
  }

  override computeMask(_inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]): tf.Tensor {
    // tfjs's typings say Tensor, but a layer with no mask returns null (as Layer.computeMask does).
    if (mask == null) return null as unknown as tf.Tensor;
    return Array.isArray(mask) ? (mask[0] ?? (null as unknown as tf.Tensor)) : mask;
  }

  // ------------------------------------------------------------ forward

  override call(inputs: tf.Tensor | tf.Tensor[], _kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      const h = list[0];
      const x = this.kind === 'parallel' ? list[1] : null;
      if (!this.enabled || this.active.length === 0) return tf.clone(h);
      const adapters = this.active.map((n) => this.adapters.get(n)!);
      if (this.compositionMode === 'average' && adapters.length > 1) {
        const outputs = adapters.map((a) => this.adapterOutput(a, h, x ?? h));
        return tf.div(tf.addN(outputs), adapters.length);
      }
      let out = h;
      for (const adapter of adapters) out = this.adapterOutput(adapter, out, x ?? out);
      return out;
    });
  }

  /** residual + scaling · up(act(down(LN_before?(input)))), then LN_after?. */
  private adapterOutput(adapter: BottleneckWeights, residual: tf.Tensor, input: tf.Tensor): tf.Tensor {
    const width = this.width;
    let z = tf.reshape(input, [-1, width]);
    if (adapter.layerNorm === 'before') z = layerNorm(z, adapter.normGamma!, adapter.normBeta!);
    const down = activate(
      adapter.nonLinearity,
      tf.add(tf.matMul(z, adapter.downKernel.read()), adapter.downBias.read()),
    );
    let up = tf.add(tf.matMul(down, adapter.upKernel.read()), adapter.upBias.read());
    up = adapter.learnedScaling
      ? tf.mul(up, adapter.learnedScaling.read())
      : adapter.scaling === 1
        ? up
        : tf.mul(up, adapter.scaling as number);
    let out = tf.add(tf.reshape(residual, [-1, width]), up);
    if (adapter.layerNorm === 'after') out = layerNorm(out, adapter.normGamma!, adapter.normBeta!);
    return tf.reshape(out, residual.shape);
  }

  /** Disposes the adapters' variables (an inserted layer owns nothing else). */
  override disposeWeights(): number {
    const own = [...this.adapters.values()].flatMap(variablesOf);
    own.forEach((v) => v.dispose());
    return own.length;
  }

  // ------------------------------------------------------------ PeftLayer

  adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /** Active adapters, in the order they are stacked. */
  setActiveAdapters(names: readonly string[]): void {
    this.active = names.filter((n) => this.adapters.has(n));
  }

  get activeAdapters(): readonly string[] {
    return this.active;
  }

  setAdaptersEnabled(enabled: boolean): void {
    this.enabled = enabled;
  }

  get mergedAdapters(): readonly string[] {
    return [];
  }

  merge(names: readonly string[]): void {
    throw new AdapterNotMergeableError(this.name, names, NOT_LINEAR);
  }

  findNonFiniteMerge(names: readonly string[]): Promise<string | null> {
    return Promise.reject(new AdapterNotMergeableError(this.name, names, NOT_LINEAR));
  }

  /** Nothing is ever merged. */
  unmerge(): void {}

  commitMerge(): void {}

  deleteAdapter(name: string): void {
    releaseLayerWeights(this, variablesOf(this.requireAdapter(name)));
    this.adapters.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  adapterVariables(name: string): LayerVariable[] {
    return variablesOf(this.requireAdapter(name));
  }

  adapterSettings(name: string): BottleneckAdapterSettings {
    const { bottleneck, nonLinearity, scaling, layerNorm, initWeights } = this.requireAdapter(name);
    return { bottleneck, nonLinearity, scaling, layerNorm, initWeights };
  }

  /** Saved tensors in PyTorch layout: adapter_down.weight [bottleneck, width], adapter_up.weight [width, bottleneck], …. */
  adapterState(name: string): Map<string, tf.Tensor> {
    const adapter = this.requireAdapter(name);
    const state = new Map<string, tf.Tensor>([
      ['adapter_down.weight', tf.transpose(adapter.downKernel.read())],
      ['adapter_down.bias', tf.clone(adapter.downBias.read())],
      ['adapter_up.weight', tf.transpose(adapter.upKernel.read())],
      ['adapter_up.bias', tf.clone(adapter.upBias.read())],
    ]);
    if (adapter.layerNorm) {
      state.set(`adapter_norm_${adapter.layerNorm}.weight`, tf.clone(adapter.normGamma!.read()));
      state.set(`adapter_norm_${adapter.layerNorm}.bias`, tf.clone(adapter.normBeta!.read()));
    }
    if (adapter.learnedScaling) state.set('scaling', tf.clone(adapter.learnedScaling.read()));
    return state;
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    const { bottleneck, layerNorm, learnedScaling } = this.requireAdapter(name);
    const width = this.width;
    const shapes = new Map<string, number[]>([
      ['adapter_down.weight', [bottleneck, width]],
      ['adapter_down.bias', [bottleneck]],
      ['adapter_up.weight', [width, bottleneck]],
      ['adapter_up.bias', [width]],
    ]);
    if (layerNorm) {
      shapes.set(`adapter_norm_${layerNorm}.weight`, [width]);
      shapes.set(`adapter_norm_${layerNorm}.bias`, [width]);
    }
    if (learnedScaling) shapes.set('scaling', [1]);
    return shapes;
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    const adapter = this.requireAdapter(name);
    tf.tidy(() => {
      adapter.downKernel.write(tf.transpose(state.get('adapter_down.weight')!));
      adapter.downBias.write(state.get('adapter_down.bias')!);
      adapter.upKernel.write(tf.transpose(state.get('adapter_up.weight')!));
      adapter.upBias.write(state.get('adapter_up.bias')!);
      if (adapter.layerNorm) {
        adapter.normGamma!.write(state.get(`adapter_norm_${adapter.layerNorm}.weight`)!);
        adapter.normBeta!.write(state.get(`adapter_norm_${adapter.layerNorm}.bias`)!);
      }
      if (adapter.learnedScaling) adapter.learnedScaling.write(state.get('scaling')!);
    });
  }

  private requireAdapter(name: string): BottleneckWeights {
    const adapter = this.adapters.get(name);
    if (!adapter) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    return adapter;
  }

  // ------------------------------------------------------------ serialisation

  override getConfig(): tf.serialization.ConfigDict {
    const adapters: Record<string, BottleneckAdapterSettings> = {};
    for (const name of this.adapters.keys()) adapters[name] = this.adapterSettings(name);
    return {
      ...super.getConfig(),
      kind: this.kind,
      targetLayerName: this.targetLayerName,
      width: this.width,
      adapters: adapters as unknown as tf.serialization.ConfigDict,
      activeAdapters: [...this.active],
      composition: this.compositionMode,
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    return new (cls as unknown as new (args: BottleneckAdapterArgs) => T)({
      name: config.name as string,
      kind: config.kind as BottleneckAdapterKind,
      targetLayerName: config.targetLayerName as string,
      width: config.width as number,
      adapters: config.adapters as unknown as Record<string, BottleneckAdapterSettings>,
      activeAdapters: config.activeAdapters as string[],
      composition: config.composition as BottleneckComposition,
    });
  }
}
tf.serialization.registerClass(BottleneckAdapter);

function variablesOf(adapter: BottleneckWeights): LayerVariable[] {
  return [
    adapter.downKernel,
    adapter.downBias,
    adapter.upKernel,
    adapter.upBias,
    adapter.normGamma,
    adapter.normBeta,
    adapter.learnedScaling,
  ].filter((v): v is LayerVariable => v !== null);
}

function layerNorm(x: tf.Tensor, gamma: LayerVariable, beta: LayerVariable): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  const normalized = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, LAYER_NORM_EPSILON)));
  return tf.add(tf.mul(normalized, gamma.read()), beta.read());
}

const SQRT_HALF = Math.SQRT1_2;

function activate(kind: BottleneckNonLinearity, x: tf.Tensor): tf.Tensor {
  switch (kind) {
    case 'relu':
      return tf.relu(x);
    case 'tanh':
      return tf.tanh(x);
    case 'swish':
      return tf.mul(x, tf.sigmoid(x));
    case 'gelu':
      // The exact (erf) GELU, as PyTorch's nn.GELU() and AdapterHub's 'gelu'.
      return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, SQRT_HALF))));
  }
}
