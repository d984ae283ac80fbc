import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  checkAdapterName,
  DEFAULT_MAX_FILE_BYTES,
  resolveAdapterStore,
  type AdapterStore,
} from './adapter-store';
import {
  AdapterIOError,
  AdapterNotMergeableError,
  NonFiniteWeightError,
  AdapterMismatchError,
  AdapterNameError,
  PeftConfigError,
  PeftError,
} from './errors';
import { installFrozenPath } from './frozen-layer-path';
import { collectLayers, rebuildModel } from './model-graph';
import { injectModulesToSave } from './modules-to-save-wrapper';
import { countParameters, formatTrainableParameters, type TrainableParameterCount } from './parameter-count';
import { PeftConfig } from './peft-config';
import { isPeftLayer, type PeftLayer } from './peft-layer';
import { getPeftMethod } from './peft-method-registry';
import { assertFiniteAdapterTensors } from './adapter-validation';
import { parseJsonObject } from './safe-json';
import { parseSafetensors, serializeSafetensors, type SafetensorsLimits } from './safetensors';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
const KEY_PREFIX = 'base_model.model.';
const MAX_CONFIG_BYTES = 1024 * 1024;

/** Maps a Hugging Face module path (`bert.encoder.layer.0.attention.self.query`) to a tfjs layer name. */
export type ModuleNameMapping =
  | Readonly<Record<string, string>>
  | ((peftModulePath: string) => string | undefined);

export interface LoadAdapterOptions {
  /** Name the loaded adapter gets; 'default' unless given. */
  adapterName?: string;
  /** Load it ready to train further. PEFT's default, false, loads it frozen for inference. */
  isTrainable?: boolean;
  /** Read from a subfolder of the location (PEFT saves non-default adapters in one named after them). */
  subfolder?: string;
  /** For adapters trained on a model whose module paths differ from the tfjs layer names. */
  nameMapping?: ModuleNameMapping;
  /** Largest adapter_model.safetensors accepted, in bytes. */
  maxFileBytes?: number;
  safetensorsLimits?: SafetensorsLimits;
}

export interface SaveAdapterOptions {
  /** Adapters to save; all by default. 'default' goes at the top level, others into subfolders. */
  selectedAdapters?: string[];
}

type LayerVariable = tfl.LayerVariable;

/**
 * A base model with one or more adapters of one PEFT method. `peft.model` is the adapted
 * `tf.LayersModel` (compile/fit/evaluate/predict work on it); the base layers and their variables are
 * shared with the user's model, frozen while the adapters are attached, and given back by unload().
 */
export class PeftModel {
  private currentModel: tfl.LayersModel;
  private readonly configs = new Map<string, PeftConfig>();
  private readonly frozenAdapters = new Set<string>();
  private active: string[] = [];
  private readonly savedTrainable = new Map<
    tfl.layers.Layer,
    { layer: boolean; variables: Map<LayerVariable, boolean>; restoreCall: (() => void) | null }
  >();
  private disabledDepth = 0;
  private unloaded = false;

  /** Use getPeftModel() or PeftModel.fromPretrained(). */
  constructor(readonly baseModel: tfl.LayersModel) {
    this.currentModel = baseModel;
  }

  /** The adapted model. It is rebuilt when adapters are added or deleted: read it again after those calls. */
  get model(): tfl.LayersModel {
    this.assertUsable();
    return this.currentModel;
  }

  get peftType(): string | null {
    const first = this.configs.values().next();
    return first.done ? null : first.value.peftType;
  }

  /** Configs by adapter name. */
  get peftConfig(): Readonly<Record<string, PeftConfig>> {
    return Object.fromEntries(this.configs);
  }

  get activeAdapters(): readonly string[] {
    return [...this.active];
  }

  get activeAdapter(): string {
    return this.active[0];
  }

  /** The PEFT layers of the model (LoRA wrappers, inserted adapters, …). */
  peftLayers(): Array<PeftLayer & tfl.layers.Layer> {
    return collectLayers(this.currentModel).filter(isPeftLayer);
  }

  // ---------------------------------------------------------------- parameters

  getNbTrainableParameters(): TrainableParameterCount {
    return countParameters(this.model);
  }

  /** Prints Hugging Face PEFT's line, e.g. `trainable params: 1,544 || all params: 102,410 || trainable%: 1.5076`. */
  printTrainableParameters(log: (line: string) => void = console.log): void {
    log(formatTrainableParameters(this.getNbTrainableParameters()));
  }

  /** The variables a custom training loop should optimise: those of the active, trainable adapters. */
  get trainableVariables(): tf.Variable[] {
    return this.model.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  // ---------------------------------------------------------------- adapters

  /** Adds a new adapter of the same method; it is not activated (call setAdapter). */
  addAdapter(adapterName: string, config: PeftConfig): void {
    this.assertUsable();
    this.injectAdapter(adapterName, config);
    this.updateTrainability();
  }

  /** Activates one adapter, or several whose effects are summed. Only active adapters train. */
  setAdapter(names: string | readonly string[]): void {
    this.assertUsable();
    const list = typeof names === 'string' ? [names] : [...names];
    if (list.length === 0) throw new AdapterNameError('', 'setAdapter needs at least one adapter name');
    for (const name of list) this.requireAdapter(name);
    this.active = list;
    for (const layer of this.peftLayers())
      layer.setActiveAdapters(list.filter((n) => layer.adapterNames().includes(n)));
    this.updateTrainability();
  }

  /**
   * Runs `fn` with every adapter switched off (the base model's behaviour), and switches them back on
   * afterwards, also when `fn` throws or rejects.
   */
  withAdapterDisabled<T>(fn: () => T): T {
    this.assertUsable();
    const layers = this.peftLayers();
    const setEnabled = (enabled: boolean) => layers.forEach((l) => l.setAdaptersEnabled(enabled));
    this.disabledDepth++;
    setEnabled(false);
    const restore = () => {
      if (--this.disabledDepth === 0) setEnabled(true);
    };
    let result: T;
    try {
      result = fn();
    } catch (error) {
      restore();
      throw error;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }

  /** Removes an adapter and frees its variables. */
  deleteAdapter(adapterName: string): void {
    this.assertUsable();
    this.requireAdapter(adapterName);
    if (this.peftLayers().some((l) => l.mergedAdapters.includes(adapterName))) {
      throw new AdapterNameError(adapterName, 'is merged into the base weights; unmergeAdapter() first');
    }
    for (const layer of this.peftLayers())
      if (layer.adapterNames().includes(adapterName)) layer.deleteAdapter(adapterName);
    this.configs.delete(adapterName);
    this.frozenAdapters.delete(adapterName);
    this.active = this.active.filter((n) => n !== adapterName);
    if (this.active.length === 0 && this.configs.size > 0)
      this.active = [this.configs.keys().next().value as string];
    this.dropEmptyPeftLayers();
    if (this.active.length) this.setAdapter(this.active);
    if (this.configs.size === 0) this.restoreTrainable();
  }

  /**
   * A new adapter combining existing ones (Hugging Face PEFT's add_weighted_adapter), for methods
   * that support it (LoRA: 'linear', 'cat', 'svd'). It is added, not activated.
   */
  async addWeightedAdapter(
    adapters: readonly string[],
    weights: readonly number[],
    newName: string,
    combinationType = 'svd',
    { svdRank }: { svdRank?: number } = {},
  ): Promise<void> {
    this.assertUsable();
    checkAdapterName(newName);
    if (this.configs.has(newName)) throw new AdapterNameError(newName, 'already exists on this model');
    if (adapters.length === 0 || adapters.length !== weights.length) {
      throw new PeftConfigError(
        'weights',
        weights,
        `expected one weight per adapter (${adapters.length} adapters)`,
      );
    }
    adapters.forEach((n) => this.requireAdapter(n));
    const method = getPeftMethod(this.peftType!);
    if (!method.addWeightedAdapter) {
      throw new PeftError(`${method.peftType} adapters cannot be combined with addWeightedAdapter`);
    }
    const config = await method.addWeightedAdapter(this.peftLayers(), this.configs, {
      adapters,
      weights,
      newName,
      combinationType,
      svdRank,
    });
    this.configs.set(newName, config);
    this.updateTrainability();
  }

  // ---------------------------------------------------------------- merging

  /**
   * Writes the active (or named) adapters into the base weights; unmergeAdapter() restores them
   * bit-exactly. With `safeMerge`, every merged weight is checked first (reading values back, hence
   * the Promise) and a NaN/Inf anywhere throws, naming the layer, before any weight is written.
   */
  async mergeAdapter(
    adapterNames: readonly string[] = this.active,
    { safeMerge = false } = {},
  ): Promise<void> {
    this.assertUsable();
    adapterNames.forEach((n) => this.requireAdapter(n));
    const plan: Array<[PeftLayer, string[]]> = [];
    for (const layer of this.peftLayers()) {
      const names = adapterNames.filter(
        (n) => layer.adapterNames().includes(n) && !layer.mergedAdapters.includes(n),
      );
      if (names.length) plan.push([layer, names]);
    }
    const unmergeable = plan.find(([layer]) => layer.mergeable === false);
    if (unmergeable)
      throw new AdapterNotMergeableError(
        unmergeable[0].name,
        unmergeable[1],
        `${unmergeable[0].peftType} adapters are not linear`,
      );
    if (safeMerge) {
      for (const [layer, names] of plan) {
        const problem = await layer.findNonFiniteMerge(names);
        if (problem !== null)
          throw new NonFiniteWeightError(layer.name, `${problem} merged with adapters ${names.join(', ')}`);
      }
    }
    for (const [layer, names] of plan) layer.merge(names);
  }

  unmergeAdapter(): void {
    this.assertUsable();
    for (const layer of this.peftLayers()) layer.unmerge();
  }

  /** Merges the active adapters into the base weights and returns the base model, without adapter layers. */
  async mergeAndUnload({ safeMerge = false } = {}): Promise<tfl.LayersModel> {
    await this.mergeAdapter(this.active, { safeMerge });
    for (const layer of this.peftLayers()) layer.commitMerge();
    return this.unload();
  }

  /** Removes every adapter and gives back the base model as it was (weights unmerged first). */
  unload(): tfl.LayersModel {
    this.assertUsable();
    for (const layer of this.peftLayers()) layer.unmerge();
    for (const name of [...this.configs.keys()]) {
      for (const layer of this.peftLayers())
        if (layer.adapterNames().includes(name)) layer.deleteAdapter(name);
    }
    this.configs.clear();
    this.active = [];
    this.restoreTrainable();
    this.replaceModel(this.baseModel);
    this.unloaded = true;
    return this.baseModel;
  }

  /** Frees every adapter and the adapted graph, and gives the base model back as it was (same as unload()). */
  dispose(): void {
    if (!this.unloaded) this.unload();
  }

  // ---------------------------------------------------------------- persistence

  /** Writes `adapter_config.json` + `adapter_model.safetensors` in Hugging Face PEFT's layout. */
  async saveAdapter(
    location: string | AdapterStore,
    { selectedAdapters }: SaveAdapterOptions = {},
  ): Promise<void> {
    this.assertUsable();
    const store = resolveAdapterStore(location);
    const names = selectedAdapters ?? [...this.configs.keys()];
    const files = new Map<string, Uint8Array>();
    for (const name of names) {
      this.requireAdapter(name);
      checkAdapterName(name);
      const prefix = name === 'default' ? '' : `${name}/`;
      const { tensors, moduleKeys } = await this.collectAdapterTensors(name);
      const config = this.configs.get(name)!;
      const fileKeys = getPeftMethod(config.peftType).fileKeys;
      files.set(
        `${prefix}${ADAPTER_WEIGHTS_FILE}`,
        serializeSafetensors(fileKeys ? renameKeys(tensors, fileKeys.toFile) : tensors),
      );
      const json = config.toJson();
      // Targets given as RegExps are saved as the module paths they matched, which PEFT reads as names.
      if (json.target_modules === null) json.target_modules = moduleKeys;
      files.set(`${prefix}${ADAPTER_CONFIG_FILE}`, new TextEncoder().encode(JSON.stringify(json, null, 2)));
    }
    await store.writeFiles(files);
  }

  private async collectAdapterTensors(name: string) {
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    const moduleKeys = new Set<string>();
    for (const layer of this.peftLayers()) {
      if (!layer.adapterNames().includes(name)) continue;
      moduleKeys.add(layer.moduleName);
      const state = layer.adapterState(name);
      try {
        for (const [suffix, tensor] of state) {
          tensors.set(`${KEY_PREFIX}${layer.moduleName}.${suffix}`, {
            shape: tensor.shape,
            data: (await tensor.data()) as Float32Array,
          });
        }
      } finally {
        state.forEach((t) => t.dispose());
      }
    }
    return { tensors, moduleKeys: [...moduleKeys] };
  }

  /** Loads an adapter folder written by this library or by Hugging Face PEFT. */
  static async fromPretrained(
    baseModel: tfl.LayersModel,
    location: string | AdapterStore,
    options: LoadAdapterOptions = {},
  ): Promise<PeftModel> {
    const peft = new PeftModel(baseModel);
    await peft.loadAdapter(location, options.adapterName ?? 'default', options);
    return peft;
  }

  /**
   * Loads an adapter into this model under `adapterName`. Atomic: if any file, key or shape is wrong,
   * the model is left exactly as it was and a typed error names the culprit.
   */
  async loadAdapter(
    location: string | AdapterStore,
    adapterName: string,
    options: Omit<LoadAdapterOptions, 'adapterName'> = {},
  ): Promise<void> {
    this.assertUsable();
    checkAdapterName(adapterName);
    if (this.configs.has(adapterName))
      throw new AdapterNameError(adapterName, 'already exists on this model');
    const store = resolveAdapterStore(location);
    const prefix = options.subfolder ? `${checkAdapterName(options.subfolder)}/` : '';
    const configBytes = await store.readFile(`${prefix}${ADAPTER_CONFIG_FILE}`, MAX_CONFIG_BYTES);
    if (!configBytes) throw new AdapterIOError(store.url, `no ${prefix}${ADAPTER_CONFIG_FILE} here`);
    const json = parseJsonObject(configBytes, ADAPTER_CONFIG_FILE);
    const peftType = json.peft_type;
    if (typeof peftType !== 'string')
      throw new PeftConfigError('peft_type', peftType, 'expected a string such as "LORA"');
    const method = getPeftMethod(peftType);
    const config = method.configFromJson(mapTargets(json, options.nameMapping));
    const weightBytes = await store.readFile(
      `${prefix}${ADAPTER_WEIGHTS_FILE}`,
      options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
    );
    if (!weightBytes) throw new AdapterIOError(store.url, `no ${prefix}${ADAPTER_WEIGHTS_FILE} here`);
    const parsed = parseSafetensors(weightBytes, ADAPTER_WEIGHTS_FILE, options.safetensorsLimits);
    const file = method.fileKeys
      ? { ...parsed, tensors: renameKeys(parsed.tensors, method.fileKeys.fromFile) }
      : parsed;
    // Everything about the files is checked before the model is touched.
    assertFiniteAdapterTensors(file.tensors);
    const mappedShapes = new Map(
      [...file.tensors].map(
        ([key, t]) => [remapKey(key, options.nameMapping), t.shape] as [string, number[]],
      ),
    );
    method.checkConfigAgainstFile?.(this.currentModel, config, mappedShapes);

    const hadAdapters = this.configs.size > 0;
    const previousActive = [...this.active];
    this.injectAdapter(adapterName, config);
    try {
      const state = this.matchFileToLayers(adapterName, file.tensors, options.nameMapping);
      try {
        for (const [layer, tensors] of state) layer.loadAdapterState(adapterName, tensors);
      } finally {
        state.forEach((tensors) => tensors.forEach((t) => t.dispose()));
      }
    } catch (error) {
      // Roll back: no variable of the base model was written, so removing the adapter restores it.
      for (const layer of this.peftLayers())
        if (layer.adapterNames().includes(adapterName)) layer.deleteAdapter(adapterName);
      this.configs.delete(adapterName);
      this.active = previousActive;
      if (hadAdapters) this.dropEmptyPeftLayers();
      else {
        this.replaceModel(this.baseModel);
        this.restoreTrainable();
      }
      throw error;
    }
    if (!options.isTrainable) this.frozenAdapters.add(adapterName);
    if (!hadAdapters) this.setAdapter(adapterName);
    else this.updateTrainability();
  }

  private matchFileToLayers(
    adapterName: string,
    tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>,
    nameMapping?: ModuleNameMapping,
  ): Map<PeftLayer, Map<string, tf.Tensor>> {
    const expected = new Map<string, { layer: PeftLayer; suffix: string; shape: number[] }>();
    const byModule = new Map<string, PeftLayer>();
    for (const layer of this.peftLayers()) {
      if (!layer.adapterNames().includes(adapterName)) continue;
      byModule.set(layer.moduleName, layer);
      for (const [suffix, shape] of layer.adapterStateShapes(adapterName)) {
        expected.set(`${layer.moduleName}.${suffix}`, { layer, suffix, shape });
      }
    }
    // Longest first: `weight` (a saved module) is also the end of `lora_A.weight`.
    const suffixes = [...new Set([...expected.values()].map((e) => e.suffix))].sort(
      (a, b) => b.length - a.length,
    );
    const found = new Map<string, { layer: PeftLayer; suffix: string; shape: number[]; key: string }>();
    for (const key of tensors.keys()) {
      if (!key.startsWith(KEY_PREFIX)) {
        throw new AdapterMismatchError(key, `does not start with "${KEY_PREFIX}" as PEFT's keys do`);
      }
      const rest = key.slice(KEY_PREFIX.length);
      const candidates = suffixes
        .filter((s) => rest.endsWith(`.${s}`))
        .map((suffix) => {
          const modulePath = rest.slice(0, rest.length - suffix.length - 1);
          const layerName = mapModuleName(modulePath, nameMapping);
          return { suffix, modulePath, layerName, entry: expected.get(`${layerName}.${suffix}`) };
        });
      if (candidates.length === 0) {
        throw new AdapterMismatchError(
          key,
          `is not a tensor this ${this.peftType} adapter has (expected suffixes: ${suffixes.join(', ')})`,
        );
      }
      const { suffix, modulePath, layerName, entry } = candidates.find((c) => c.entry) ?? candidates[0];
      if (!entry) {
        throw new AdapterMismatchError(
          key,
          `module "${modulePath}" is not an adapted layer of this model (adapted: ${[...byModule.keys()].join(', ')})` +
            (nameMapping
              ? ''
              : '; pass nameMapping if the adapter was trained on a model with other module names'),
        );
      }
      found.set(`${layerName}.${suffix}`, { ...entry, key });
    }
    for (const [name] of expected) {
      if (!found.has(name))
        throw new AdapterMismatchError(`${KEY_PREFIX}${name}`, 'is missing from the adapter file');
    }
    const result = new Map<PeftLayer, Map<string, tf.Tensor>>();
    try {
      for (const { layer, suffix, shape, key } of found.values()) {
        const stored = tensors.get(key)!;
        if (stored.shape.length !== shape.length || stored.shape.some((d, i) => d !== shape[i])) {
          throw new AdapterMismatchError(
            key,
            `has shape [${stored.shape.join(', ')}] but layer "${layer.name}" needs [${shape.join(', ')}]`,
          );
        }
        if (!result.has(layer)) result.set(layer, new Map());
        result.get(layer)!.set(suffix, tf.tensor(stored.data, shape, 'float32'));
      }
    } catch (error) {
      result.forEach((m) => m.forEach((t) => t.dispose()));
      throw error;
    }
    return result;
  }

  // ---------------------------------------------------------------- internals

  /** Used by getPeftModel and addAdapter. */
  injectAdapter(adapterName: string, config: PeftConfig): void {
    checkAdapterName(adapterName);
    if (!(config instanceof PeftConfig)) {
      throw new PeftConfigError(
        'config',
        config,
        'expected a PEFT config object such as new LoraConfig({...})',
      );
    }
    if (this.configs.has(adapterName))
      throw new AdapterNameError(adapterName, 'already exists on this model');
    if (this.peftType !== null && this.peftType !== config.peftType) {
      throw new PeftError(
        `Adapter "${adapterName}" is ${config.peftType} but this model holds ${this.peftType} adapters; ` +
          'one PeftModel holds adapters of one method',
      );
    }
    const method = getPeftMethod(config.peftType);
    const firstAdapter = this.configs.size === 0;
    if (firstAdapter) this.freezeBase();
    let model: tfl.LayersModel;
    try {
      model = method.inject(this.currentModel, config, adapterName);
    } catch (error) {
      if (firstAdapter) this.restoreTrainable();
      throw error;
    }
    this.replaceModel(model);
    if (config.modulesToSave?.length) {
      try {
        this.replaceModel(injectModulesToSave(this.currentModel, config.modulesToSave, adapterName));
      } catch (error) {
        for (const layer of this.peftLayers())
          if (layer.adapterNames().includes(adapterName)) layer.deleteAdapter(adapterName);
        if (firstAdapter) {
          this.replaceModel(this.baseModel);
          this.restoreTrainable();
        } else this.dropEmptyPeftLayers();
        throw error;
      }
    }
    this.configs.set(adapterName, config);
    if (firstAdapter) this.active = [adapterName];
    for (const layer of this.peftLayers()) {
      layer.setActiveAdapters(this.active.filter((n) => layer.adapterNames().includes(n)));
    }
  }

  private freezeBase(): void {
    for (const layer of collectLayers(this.baseModel)) {
      if (this.savedTrainable.has(layer)) continue;
      const variables = new Map<LayerVariable, boolean>();
      for (const v of layer.weights) variables.set(v, v.trainable);
      this.savedTrainable.set(layer, {
        layer: layer.trainable,
        variables,
        restoreCall: installFrozenPath(layer),
      });
      layer.trainable = false;
    }
  }

  private restoreTrainable(): void {
    for (const [layer, saved] of this.savedTrainable) {
      layer.trainable = saved.layer;
      for (const [v, trainable] of saved.variables) v.trainable = trainable;
      saved.restoreCall?.();
    }
    this.savedTrainable.clear();
  }

  private updateTrainability(): void {
    for (const layer of this.peftLayers()) {
      for (const name of layer.adapterNames()) {
        const trainable = this.active.includes(name) && !this.frozenAdapters.has(name);
        for (const v of layer.adapterVariables(name)) v.trainable = trainable;
      }
    }
  }

  private dropEmptyPeftLayers(): void {
    const empty = this.peftLayers().filter((l) => l.adapterNames().length === 0);
    if (empty.length === 0) return;
    const remove = new Set<tfl.layers.Layer>(empty);
    this.replaceModel(
      rebuildModel(this.currentModel, (layer, inputs, callArgs) => {
        if (!remove.has(layer)) return undefined;
        const base = (layer as unknown as PeftLayer).baseLayer;
        return base ? (base.apply(inputs, callArgs) as tfl.SymbolicTensor) : inputs;
      }),
    );
  }

  /**
   * Switches to another graph and releases the one it replaces: a rebuilt graph holds references to
   * the shared layers (tfjs counts them), so it is disposed as a container; layers still used
   * elsewhere keep their weights, and PEFT layers dispose only what they own.
   */
  private replaceModel(next: tfl.LayersModel): void {
    const previous = this.currentModel;
    this.currentModel = next;
    if (previous !== next && previous !== this.baseModel) previous.dispose();
    if (next !== this.baseModel) this.attachFrozenFitHint(next);
  }

  /**
   * PEFT users' common trap: an adapter loaded for inference (isTrainable false) is fitted, and
   * nothing trains. Say so, and how to fix it, when fit or fitDataset starts with nothing trainable.
   */
  private attachFrozenFitHint(model: tfl.LayersModel): void {
    const warnIfFrozen = () => {
      if (model.trainableWeights.length === 0 && this.frozenAdapters.size > 0) {
        console.warn(
          `[tfjs-peft] Nothing will train: adapter(s) ${[...this.frozenAdapters].join(', ')} were loaded for ` +
            'inference. Load with PeftModel.fromPretrained(base, location, { isTrainable: true }) to continue training.',
        );
      }
    };
    const fit = model.fit.bind(model);
    const fitDataset = model.fitDataset.bind(model);
    model.fit = (...args: Parameters<typeof fit>) => {
      warnIfFrozen();
      return fit(...args);
    };
    model.fitDataset = ((...args: Parameters<typeof fitDataset>) => {
      warnIfFrozen();
      return fitDataset(...args);
    }) as typeof model.fitDataset;
  }

  private requireAdapter(name: string): void {
    if (!this.configs.has(name)) {
      throw new AdapterNameError(
        name,
        `does not exist; adapters: ${[...this.configs.keys()].join(', ') || 'none'}`,
      );
    }
  }

  private assertUsable(): void {
    if (this.unloaded) throw new PeftError('This PeftModel was unloaded; use the model unload() returned');
  }
}

/** The same tensors under the keys `rename` gives (a method's file layout ↔ peft-core's); two keys may not become one. */
function renameKeys<T>(tensors: ReadonlyMap<string, T>, rename: (key: string) => string): Map<string, T> {
  const out = new Map<string, T>();
  const from = new Map<string, string>();
  for (const [key, value] of tensors) {
    const renamed = rename(key);
    if (out.has(renamed)) {
      throw new AdapterMismatchError(key, `and "${from.get(renamed)}" both stand for "${renamed}"`);
    }
    out.set(renamed, value);
    from.set(renamed, key);
  }
  return out;
}

/** A saved key with its module path mapped to tfjs names (`base_model.model.<mapped>.<rest>`). */
function remapKey(key: string, mapping?: ModuleNameMapping): string {
  if (!mapping || !key.startsWith(KEY_PREFIX)) return key;
  const rest = key.slice(KEY_PREFIX.length);
  // The module path is everything before the last one or two segments; try the longest mapping.
  const parts = rest.split('.');
  for (let cut = parts.length - 1; cut > 0; cut--) {
    const modulePath = parts.slice(0, cut).join('.');
    const mapped = mapModuleName(modulePath, mapping);
    if (mapped !== modulePath) return `${KEY_PREFIX}${mapped}.${parts.slice(cut).join('.')}`;
  }
  return key;
}

function mapModuleName(modulePath: string, mapping?: ModuleNameMapping): string {
  if (!mapping) return modulePath;
  const mapped = typeof mapping === 'function' ? mapping(modulePath) : mapping[modulePath];
  return (mapped ?? modulePath).replace(/\//g, '.');
}

/** Applies a name mapping to the target list of a PEFT config before validation. */
function mapTargets(json: Record<string, unknown>, mapping?: ModuleNameMapping): Record<string, unknown> {
  if (!mapping || !Array.isArray(json.target_modules)) return json;
  return {
    ...json,
    target_modules: json.target_modules.map((t) => (typeof t === 'string' ? mapModuleName(t, mapping) : t)),
  };
}
