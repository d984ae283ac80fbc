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
  type PeftMethod,
} from '@tfjs-peft/core';
import { LoraConfig } from './lora-config';
import { LoraConv2D } from './lora-conv2d';
import { LoraDense } from './lora-dense';
import { LoraEmbedding } from './lora-embedding';
import { LoraLayer, type LoraLayerArgs } from './lora-layer';
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
    for (const layer of selectLayers(model, config)) {
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
    const wrapperOf = new Map<tfl.layers.Layer, LoraLayer>();
    for (const layer of layers) if (layer instanceof LoraLayer) wrapperOf.set(layer.baseLayer, layer);
    const selected = selectLayers(model, config);
    const created = new Map<tfl.layers.Layer, LoraLayer>();
    const extended: LoraLayer[] = [];
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
        } else {
          const Wrapper = WRAPPERS[layer.getClassName()];
          created.set(layer, new Wrapper({ layer, adapters: { [adapterName]: settings } }));
        }
      }
    } catch (error) {
      extended.forEach((w) => w.adapterNames().includes(adapterName) && w.deleteAdapter(adapterName));
      created.forEach((w) => w.deleteAdapter(adapterName));
      throw error;
    }
    if (created.size === 0) return model;
    return rebuildModel(
      model,
      (layer, inputs, callArgs) =>
        created.get(layer)?.apply(inputs, callArgs) as tfl.SymbolicTensor | undefined,
    );
  },
};

registerPeftMethod(loraMethod);
