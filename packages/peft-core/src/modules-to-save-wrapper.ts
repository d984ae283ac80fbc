import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { AdapterNameError, UnsupportedLayerError } from './errors';
import { collectLayers, rebuildModel } from './model-graph';
import type { PeftLayer } from './peft-layer';
import { matchTargetLayers, moduleKey } from './target-matching';

type LayerVariable = tfl.LayerVariable;
type Kwargs = Record<string, unknown>;

interface DenseInternals {
  kernel: LayerVariable;
  bias: LayerVariable | null;
}

/**
 * PEFT's `modules_to_save`: a layer (typically the classifier head) trained in full, as a per-adapter
 * copy, and saved inside the adapter — so a reloaded adapter brings its head with it. The copy starts
 * as the base layer's values (sharing their memory until training changes them); the base layer is
 * never written except by an explicit merge.
 */
export class ModulesToSaveWrapper extends tfl.layers.Layer implements PeftLayer {
  static className = 'ModulesToSaveWrapper';
  static readonly SUPPORTED = ['Dense'];
  readonly isPeftLayer = true as const;
  readonly peftType = 'MODULES_TO_SAVE';
  readonly baseLayer: tfl.layers.Layer;
  private readonly copies = new Map<string, tfl.layers.Layer>();
  private active: string[] = [];
  private enabled = true;
  private merged: string[] = [];
  private unmergedValues: tf.Tensor[] | null = null;

  constructor(args: { layer: tfl.layers.Layer; name?: string }) {
    super({ name: args.name ?? args.layer.name, trainable: true });
    this.baseLayer = args.layer;
    if (!ModulesToSaveWrapper.SUPPORTED.includes(args.layer.getClassName())) {
      throw new UnsupportedLayerError(
        args.layer.name,
        args.layer.getClassName(),
        'Dense (for modulesToSave)',
      );
    }
  }

  get moduleName(): string {
    return moduleKey(this.baseLayer.name);
  }

  override get trainableWeights(): LayerVariable[] {
    return [...this.copies.values()].flatMap((c) => c.trainableWeights);
  }

  override set trainableWeights(weights: LayerVariable[]) {
    super.trainableWeights = weights;
  }

  override get nonTrainableWeights(): LayerVariable[] {
    return [...this.baseLayer.weights, ...[...this.copies.values()].flatMap((c) => c.nonTrainableWeights)];
  }

  override set nonTrainableWeights(weights: LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  addAdapter(name: string): void {
    if (this.copies.has(name)) throw new AdapterNameError(name, `already exists on layer "${this.name}"`);
    const base = this.baseLayer;
    const [cls, fromConfig] = tf.serialization.SerializationMap.getMap().classNameMap[base.getClassName()];
    const copy = fromConfig(cls, {
      ...base.getConfig(),
      name: `${base.name}/modules_to_save/${name}`,
      trainable: true,
    }) as unknown as tfl.layers.Layer;
    const kernel = (base as unknown as DenseInternals).kernel;
    copy.build([null, kernel.shape[0] as number]);
    copy.built = true;
    for (const v of copy.weights) {
      (v as unknown as { originalName: string }).originalName =
        `${copy.name}/${v.originalName.split('/').pop()}`;
    }
    // Values shared with the base (tfjs assigns by reference, copy-on-write), so no memory until trained.
    copy.setWeights(base.getWeights());
    this.copies.set(name, copy);
  }

  override build(): void {
    this.built = true;
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.baseLayer.computeOutputShape(inputShape);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    const useCopy = this.enabled && this.merged.length === 0 && this.active.length > 0;
    const layer = useCopy ? this.copies.get(this.active[0])! : this.baseLayer;
    return layer.call(inputs, kwargs);
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

  async findNonFiniteMerge(names: readonly string[]): Promise<string | null> {
    const copy = this.requireCopy(names[0]);
    for (const w of copy.weights) {
      const finite = tf.tidy(() => tf.all(tf.isFinite(w.read())));
      const ok = (await finite.data())[0] === 1;
      finite.dispose();
      if (!ok) return `the trained ${w.originalName.split('/').pop()}`;
    }
    return null;
  }

  /** Merging a saved module means using its trained copy as the layer's weights (PEFT's merge_and_unload). */
  merge(names: readonly string[]): void {
    const copy = this.requireCopy(names[0]);
    if (this.unmergedValues === null)
      this.unmergedValues = this.baseLayer.weights.map((w) => tf.keep(tf.clone(w.read())));
    this.baseLayer.weights.forEach((w, i) => w.write(copy.weights[i].read()));
    this.merged = [names[0]];
  }

  unmerge(): void {
    if (this.unmergedValues === null) return;
    this.baseLayer.weights.forEach((w, i) => w.write(this.unmergedValues![i]));
    this.unmergedValues.forEach((t) => t.dispose());
    this.unmergedValues = null;
    this.merged = [];
  }

  commitMerge(): void {
    this.unmergedValues?.forEach((t) => t.dispose());
    this.unmergedValues = null;
    this.merged = [];
  }

  deleteAdapter(name: string): void {
    const copy = this.requireCopy(name);
    copy.weights.forEach((w) => w.dispose());
    this.copies.delete(name);
    this.active = this.active.filter((n) => n !== name);
  }

  override disposeWeights(): number {
    let count = 0;
    for (const copy of this.copies.values()) {
      copy.weights.forEach((w) => w.dispose());
      count += copy.weights.length;
    }
    this.copies.clear();
    this.unmergedValues?.forEach((t) => t.dispose());
    this.unmergedValues = null;
    return count;
  }

  adapterVariables(name: string): LayerVariable[] {
    return this.requireCopy(name).weights;
  }

  /** PEFT's keys for a saved Linear: `<module>.weight` [out, in] and `<module>.bias` [out]. */
  adapterState(name: string): Map<string, tf.Tensor> {
    const copy = this.requireCopy(name) as unknown as DenseInternals;
    const state = new Map<string, tf.Tensor>([['weight', tf.transpose(copy.kernel.read())]]);
    if (copy.bias) state.set('bias', tf.clone(copy.bias.read()));
    return state;
  }

  adapterStateShapes(name: string): Map<string, number[]> {
    const copy = this.requireCopy(name) as unknown as DenseInternals;
    const [inputs, units] = copy.kernel.shape as number[];
    const shapes = new Map<string, number[]>([['weight', [units, inputs]]]);
    if (copy.bias) shapes.set('bias', [units]);
    return shapes;
  }

  loadAdapterState(name: string, state: ReadonlyMap<string, tf.Tensor>): void {
    const copy = this.requireCopy(name) as unknown as DenseInternals;
    tf.tidy(() => {
      copy.kernel.write(tf.transpose(state.get('weight')!));
      if (copy.bias) copy.bias.write(state.get('bias')!);
    });
  }

  private requireCopy(name: string): tfl.layers.Layer {
    const copy = this.copies.get(name);
    if (!copy) throw new AdapterNameError(name, `is not an adapter of layer "${this.name}"`);
    return copy;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      layer: { className: this.baseLayer.getClassName(), config: this.baseLayer.getConfig() },
    };
  }
}
tf.serialization.registerClass(ModulesToSaveWrapper);

/** Wraps (or extends) the named layers so that adapter `adapterName` trains and saves its own copy. */
export function injectModulesToSave(
  model: tfl.LayersModel,
  modules: readonly string[],
  adapterName: string,
): tfl.LayersModel {
  const layers = collectLayers(model);
  const wrapperOf = new Map<tfl.layers.Layer, ModulesToSaveWrapper>();
  for (const l of layers) if (l instanceof ModulesToSaveWrapper) wrapperOf.set(l.baseLayer, l);
  const view = layers.map((l) => (l instanceof ModulesToSaveWrapper ? l.baseLayer : l));
  const selected = matchTargetLayers(view, modules);
  const created = new Map<tfl.layers.Layer, ModulesToSaveWrapper>();
  for (const layer of selected) {
    const wrapper = wrapperOf.get(layer) ?? new ModulesToSaveWrapper({ layer });
    wrapper.addAdapter(adapterName);
    if (!wrapperOf.has(layer)) created.set(layer, wrapper);
  }
  if (created.size === 0) return model;
  return rebuildModel(
    model,
    (layer, inputs, callArgs) =>
      created.get(layer)?.apply(inputs, callArgs) as tfl.SymbolicTensor | undefined,
  );
}
