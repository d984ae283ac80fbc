import type * as tfl from '@tensorflow/tfjs-layers';
import {
  collectLayers,
  isPeftLayer,
  matchTargetLayers,
  outputLayerNames,
  PeftConfigError,
  rebuildModel,
  registerPeftMethod,
  UnsupportedLayerError,
  type PeftMethod,
} from '@tfjs-peft/core';
import { IA3Config } from './ia3-config';
import { IA3Dense } from './ia3-dense';

const SUPPORTED = ['Dense'];

/** Model-level IA³: wraps each targeted Dense (or adds the adapter to an existing wrapper). */
export const ia3Method: PeftMethod<IA3Config> = {
  peftType: 'IA3',
  configFromJson: (json) => IA3Config.fromJson(json),
  inject(model, config, adapterName) {
    const layers = collectLayers(model);
    const wrapperOf = new Map<tfl.layers.Layer, IA3Dense>();
    for (const layer of layers) if (layer instanceof IA3Dense) wrapperOf.set(layer.baseLayer, layer);
    const view = layers.map((l) => (isPeftLayer(l) && l.baseLayer ? l.baseLayer : l));
    const selected = matchTargetLayers(view, config.targetModules, {
      outputLayerNames: outputLayerNames(model),
      excludeModules: config.excludeModules,
    });
    for (const layer of selected) {
      if (!SUPPORTED.includes(layer.getClassName())) {
        throw new UnsupportedLayerError(layer.name, layer.getClassName(), SUPPORTED.join(', '));
      }
    }
    const feedforward = new Set(
      config.feedforwardModules === null ? [] : matchTargetLayers(view, config.feedforwardModules),
    );
    const outside = [...feedforward].filter((l) => !selected.includes(l)).map((l) => l.name);
    if (outside.length) {
      throw new PeftConfigError(
        'feedforwardModules',
        config.feedforwardModules,
        `must select a subset of targetModules, but also selects ${outside.join(', ')} (targets: ${selected.map((l) => l.name).join(', ')})`,
      );
    }
    const created = new Map<tfl.layers.Layer, IA3Dense>();
    const extended: IA3Dense[] = [];
    try {
      for (const layer of selected) {
        const settings = { feedforward: feedforward.has(layer), initIa3Weights: config.initIa3Weights };
        const existing = wrapperOf.get(layer);
        if (existing) {
          existing.addAdapter(adapterName, settings);
          extended.push(existing);
        } else {
          created.set(layer, new IA3Dense({ layer, adapters: { [adapterName]: settings } }));
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

registerPeftMethod(ia3Method);
