import type * as tfl from '@tensorflow/tfjs-layers';
import {
  collectLayers,
  isPeftLayer,
  matchTargetLayers,
  moduleKey,
  PeftConfigError,
  rebuildModel,
  registerPeftMethod,
  TargetNotFoundError,
  UnsupportedLayerError,
  type PeftMethod,
} from '@tfjs-peft/core';
import { BitFitConfig, PAPER_SUBSET_SEGMENTS } from './bitfit-config';
import { BitFitDense } from './bitfit-dense';
import { NoBiasError } from './bitfit-errors';
import { BitFitLayerNorm, LAYER_NORM_CLASSES } from './bitfit-layer-norm';

/** Which layers a BitFit config trains on a model, and what it leaves out (nothing is skipped silently). */
export interface BitFitPlan {
  /** Dense layers whose bias trains. */
  dense: tfl.layers.Layer[];
  /** Layer norms whose gamma and beta train (trainLayerNorm, or targeted by name). */
  layerNorms: tfl.layers.Layer[];
  /** Dense layers among the candidates built with `useBias: false`. */
  withoutBias: string[];
  /** Layers with a bias BitFit cannot train (e.g. Conv2D); their biases stay frozen. */
  unsupported: string[];
}

const isLayerNorm = (layer: tfl.layers.Layer) =>
  (LAYER_NORM_CLASSES as readonly string[]).includes(layer.getClassName());
const hasBias = (layer: tfl.layers.Layer) => (layer as unknown as { bias?: unknown }).bias != null;
const hasBiasWeight = (layer: tfl.layers.Layer) =>
  layer.weights.some((w) => /(^|\/)(bias|beta)(_\d+)?$/.test(w.originalName));
const inPaperSubset = (layer: tfl.layers.Layer) =>
  moduleKey(layer.name)
    .split('.')
    .some((segment) => (PAPER_SUBSET_SEGMENTS as readonly string[]).includes(segment));

/**
 * Resolves a config against a model. Errors: TargetNotFoundError (a target or the paper subset
 * matches nothing), NoBiasError (no bias in the model, or targeted Dense layers without one),
 * UnsupportedLayerError (a targeted layer that is neither Dense nor a layer norm).
 */
export function planBitFit(model: tfl.LayersModel, config: BitFitConfig): BitFitPlan {
  // The user's layers, seen through any wrapper (a second adapter, a modulesToSave copy).
  const view = collectLayers(model)
    .map((l) => (isPeftLayer(l) && l.baseLayer ? l.baseLayer : l))
    .filter((l) => l.getClassName() !== 'InputLayer');
  if (!view.some(hasBiasWeight)) {
    throw new NoBiasError(
      [],
      `BitFit: model "${model.name}" has no bias terms at all (every layer was built without one), so there is nothing to train`,
    );
  }
  // Layers trained in full by modulesToSave are not BitFit's (as PEFT never targets them).
  const saved = config.modulesToSave?.length
    ? new Set(matchTargetLayers(view, config.modulesToSave))
    : new Set();
  const explicit = config.targetModules !== 'all';
  const selected = explicit
    ? matchTargetLayers(view, config.targetModules as Exclude<BitFitConfig['targetModules'], 'all'>)
    : view.filter((l) => l.getClassName() === 'Dense' || hasBiasWeight(l));
  const plan: BitFitPlan = { dense: [], layerNorms: [], withoutBias: [], unsupported: [] };
  for (const layer of selected) {
    if (saved.has(layer)) continue;
    if (layer.getClassName() === 'Dense') {
      if (hasBias(layer)) plan.dense.push(layer);
      else plan.withoutBias.push(layer.name);
    } else if (isLayerNorm(layer)) {
      if (explicit || config.trainLayerNorm) plan.layerNorms.push(layer);
    } else if (explicit) {
      throw new UnsupportedLayerError(
        layer.name,
        layer.getClassName(),
        `Dense, ${LAYER_NORM_CLASSES.join(', ')}`,
      );
    } else plan.unsupported.push(layer.name);
  }
  if (config.subset === 'paper') {
    plan.dense = plan.dense.filter(inPaperSubset);
    plan.withoutBias = plan.withoutBias.filter((name) => inPaperSubset(view.find((l) => l.name === name)!));
    if (plan.dense.length === 0 && plan.withoutBias.length === 0) {
      throw new TargetNotFoundError(
        `subset 'paper' (Dense layers with a name segment ${PAPER_SUBSET_SEGMENTS.join(' or ')})`,
        selected.map((l) => l.name),
      );
    }
  }
  if (config.trainLayerNorm) {
    for (const layer of view)
      if (isLayerNorm(layer) && !plan.layerNorms.includes(layer) && !saved.has(layer))
        plan.layerNorms.push(layer);
    if (plan.layerNorms.length === 0) {
      throw new PeftConfigError(
        'trainLayerNorm',
        true,
        `model "${model.name}" has no layer-norm layer (${LAYER_NORM_CLASSES.join(', ')})`,
      );
    }
  }
  if (explicit && plan.withoutBias.length) {
    throw new NoBiasError(
      plan.withoutBias,
      `BitFit: targeted Dense layers were built without a bias (useBias: false): ${plan.withoutBias.join(', ')}`,
    );
  }
  if (plan.dense.length === 0 && plan.layerNorms.length === 0) {
    throw new NoBiasError(
      plan.withoutBias,
      `BitFit: none of the selected layers has a bias` +
        (plan.withoutBias.length ? ` (built with useBias: false: ${plan.withoutBias.join(', ')})` : ''),
    );
  }
  return plan;
}

/** Model-level BitFit: wraps each selected Dense (and layer norm), or adds the adapter to an existing wrapper. */
export const bitFitMethod: PeftMethod<BitFitConfig> = {
  peftType: 'BITFIT',
  configFromJson: (json) => BitFitConfig.fromJson(json),
  inject(model, config, adapterName) {
    const plan = planBitFit(model, config);
    const skipped = [
      ...plan.withoutBias.map((n) => `${n} (useBias: false)`),
      ...plan.unsupported.map((n) => `${n} (not a Dense layer; its bias stays frozen)`),
    ];
    if (skipped.length) console.warn(`[tfjs-peft] BitFit trains no bias in: ${skipped.join(', ')}`);
    const wrapperOf = new Map<tfl.layers.Layer, BitFitDense | BitFitLayerNorm>();
    for (const layer of collectLayers(model))
      if (layer instanceof BitFitDense || layer instanceof BitFitLayerNorm)
        wrapperOf.set(layer.baseLayer, layer);
    const created = new Map<tfl.layers.Layer, BitFitDense | BitFitLayerNorm>();
    const extended: Array<BitFitDense | BitFitLayerNorm> = [];
    try {
      for (const layer of [...plan.dense, ...plan.layerNorms]) {
        const existing = wrapperOf.get(layer);
        if (existing) {
          existing.addAdapter(adapterName);
          extended.push(existing);
        } else {
          const Wrapper = isLayerNorm(layer) ? BitFitLayerNorm : BitFitDense;
          created.set(layer, new Wrapper({ layer, adapters: [adapterName] }));
        }
      }
    } catch (error) {
      extended.forEach((w) => w.adapterNames().includes(adapterName) && w.deleteAdapter(adapterName));
      created.forEach((w) => w.disposeWeights());
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

registerPeftMethod(bitFitMethod);
