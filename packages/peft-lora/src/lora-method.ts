import type * as tfl from '@tensorflow/tfjs-layers';
import {
  collectLayers,
  filterLayersToTransform,
  isPeftLayer,
  matchTargetLayers,
  moduleKey,
  outputLayerNames,
  rebuildModel,
  registerPeftMethod,
  UnsupportedLayerError,
  AdapterMismatchError,
  PeftConfigError,
  type PeftMethod,
} from '@tfjs-peft/core';
import { LoraConfig, matchedTargetModules } from './lora-config';
import { LoraConv2D } from './lora-conv2d';
import { LoraDense } from './lora-dense';
import { LoraEmbedding } from './lora-embedding';
import { LoraLayer, type LoraLayerArgs } from './lora-layer';
import { biasVariableOf, LoraBiasLayer } from './lora-trained-bias';
import { addWeightedLoraAdapter } from './lora-weighted-adapter';

/** The LoRA layer for each supported tfjs layer class. */
const WRAPPERS: Record<string, new (args: LoraLayerArgs) => LoraLayer> = {
  Dense: LoraDense,
  Conv2D: LoraConv2D,
  Embedding: LoraEmbedding,
};
const SUPPORTED = Object.keys(WRAPPERS);

/** The user's layers a config targets, checked to be supported; allocates nothing. */
function selectLayers(model: tfl.LayersModel, config: LoraConfig): tfl.layers.Layer[] {
  // Match against the user's layers, so class-name targets ('Dense') still see wrapped layers.
  const view = collectLayers(model).map((l) => (isPeftLayer(l) && l.baseLayer ? l.baseLayer : l));
  const selected = filterLayersToTransform(
    matchTargetLayers(view, config.targetModules, {
      outputLayerNames: outputLayerNames(model),
      excludeModules: config.excludeModules,
    }),
    config.layersToTransform,
    config.layersPattern,
  );
  for (const layer of selected) {
    if (!SUPPORTED.includes(layer.getClassName())) {
      throw new UnsupportedLayerError(layer.name, layer.getClassName(), SUPPORTED.join(', '));
    }
    if (config.useDora && layer.getClassName() !== 'Dense') {
      throw new UnsupportedLayerError(layer.name, layer.getClassName(), 'Dense (for useDora)');
    }
  }
  return selected;
}

/**
 * Loading checks the config against the file (checkConfigAgainstFile) and then injects it, on the
 * same model with the same config: the selection made for the check is kept here (one entry per
 * config, taken by inject), so target matching runs once per load.
 */
const selections = new WeakMap<LoraConfig, { model: tfl.LayersModel; layers: tfl.layers.Layer[] }>();

function takeSelection(model: tfl.LayersModel, config: LoraConfig): tfl.layers.Layer[] {
  const kept = selections.get(config);
  selections.delete(config);
  return kept && kept.model === model ? kept.layers : selectLayers(model, config);
}

/** True for a module name listed in modulesToSave (exact, or a suffix after `.`). */
function isModuleToSave(layer: tfl.layers.Layer, config: LoraConfig): boolean {
  const key = moduleKey(layer.name);
  return (config.modulesToSave ?? []).some((m) => key === m || key.endsWith(`.${m}`));
}

/** PEFT allows one adapter with bias training per model: the biases are the base model's own. */
function assertNoBiasAdapter(layers: tfl.layers.Layer[], config: LoraConfig, adapterName: string): void {
  for (const layer of layers) {
    const owner = layer instanceof LoraLayer || layer instanceof LoraBiasLayer ? layer.biasAdapter : null;
    if (owner !== null) {
      throw new PeftConfigError(
        'bias',
        config.bias,
        `adapter "${adapterName}" cannot train biases: adapter "${owner}" already does (layer "${layer.name}"); ` +
          'one adapter per model may use bias "all" or "loraOnly", as in Hugging Face PEFT — give the others bias "none"',
      );
    }
  }
}

/** Model-level LoRA: wraps each targeted layer (or adds the adapter to an existing wrapper). */
export const loraMethod: PeftMethod<LoraConfig> = {
  peftType: 'LORA',
  configFromJson: (json) => LoraConfig.fromJson(json),
  addWeightedAdapter: addWeightedLoraAdapter,
  checkConfigAgainstFile(model, config, shapes) {
    // Before any variable exists: a config must not make the loader allocate ranks the file lacks.
    const fileRanks = [...shapes]
      .filter(([key]) => key.endsWith('.lora_A.weight') || key.endsWith('.lora_embedding_A'))
      .map(([, shape]) => shape[0]);
    const largest = Math.max(0, ...fileRanks);
    const layers = selectLayers(model, config);
    selections.set(config, { model, layers });
    for (const layer of layers) {
      const { r } = config.rankAndAlphaFor(moduleKey(layer.name));
      if (r > largest) {
        throw new AdapterMismatchError(
          `${moduleKey(layer.name)}.lora_A`,
          `adapter_config.json asks for rank ${r} on layer "${layer.name}" but the file's largest rank is ${largest}`,
        );
      }
    }
  },
  inject(model, config, adapterName) {
    const layers = collectLayers(model);
    const selected = takeSelection(model, config);
    const wrapperOf = new Map<tfl.layers.Layer, LoraLayer>();
    for (const layer of layers) if (layer instanceof LoraLayer) wrapperOf.set(layer.baseLayer, layer);
    const trainsBias = config.bias !== 'none';
    if (trainsBias) assertNoBiasAdapter(layers, config, adapterName);
    for (const layer of layers) {
      if (layer instanceof LoraBiasLayer && selected.includes(layer.baseLayer)) {
        throw new PeftConfigError(
          'targetModules',
          layer.baseLayer.name,
          `layer "${layer.baseLayer.name}"'s bias is trained by adapter "${layer.biasAdapter}" (bias "all"); ` +
            'add the adapters that put LoRA on it before that one',
        );
      }
    }
    const created = new Map<tfl.layers.Layer, LoraLayer>();
    const extended: LoraLayer[] = [];
    /** bias 'all': the other layers' biases (existing LoRA wrappers, or new bias-only wrappers). */
    const biasOnly: LoraLayer[] = [];
    const biasWrappers = new Map<tfl.layers.Layer, LoraBiasLayer>();
    try {
      for (const layer of selected) {
        const { r, alpha } = config.rankAndAlphaFor(moduleKey(layer.name));
        const settings = {
          r,
          loraAlpha: alpha,
          loraDropout: config.loraDropout,
          useRslora: config.useRslora,
          initLoraWeights: config.initLoraWeights,
          useDora: config.useDora,
        };
        const existing = wrapperOf.get(layer);
        if (existing) {
          existing.addAdapter(adapterName, settings);
          extended.push(existing);
          if (trainsBias) existing.trainBias(adapterName);
        } else {
          const Wrapper = WRAPPERS[layer.getClassName()];
          const wrapper = new Wrapper({ layer, adapters: { [adapterName]: settings } });
          created.set(layer, wrapper);
          if (trainsBias) wrapper.trainBias(adapterName);
        }
      }
      if (config.bias === 'all') {
        for (const layer of layers) {
          const base = layer instanceof LoraLayer ? layer.baseLayer : layer;
          if (selected.includes(base) || isModuleToSave(base, config)) continue;
          if (layer instanceof LoraLayer) {
            if (layer.trainBias(adapterName)) biasOnly.push(layer);
            continue;
          }
          if (isPeftLayer(layer)) continue;
          const variable = biasVariableOf(layer);
          if (variable) biasWrappers.set(layer, new LoraBiasLayer({ layer, adapterName, variable }));
        }
      }
    } catch (error) {
      extended.forEach((w) => w.adapterNames().includes(adapterName) && w.deleteAdapter(adapterName));
      biasOnly.forEach((w) => w.deleteAdapter(adapterName));
      created.forEach((w) => w.adapterNames().includes(adapterName) && w.deleteAdapter(adapterName));
      biasWrappers.forEach((w) => w.deleteAdapter(adapterName));
      throw error;
    }
    matchedTargetModules.set(config, [
      ...new Set([...(matchedTargetModules.get(config) ?? []), ...selected.map((l) => moduleKey(l.name))]),
    ]);
    if (created.size === 0 && biasWrappers.size === 0) return model;
    return rebuildModel(
      model,
      (layer, inputs, callArgs) =>
        (created.get(layer) ?? biasWrappers.get(layer))?.apply(inputs, callArgs) as
          | tfl.SymbolicTensor
          | undefined,
    );
  },
};

registerPeftMethod(loraMethod);
