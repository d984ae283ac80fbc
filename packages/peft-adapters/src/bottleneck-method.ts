import type * as tfl from '@tensorflow/tfjs-layers';
import {
  AdapterMismatchError,
  collectLayers,
  isPeftLayer,
  matchTargetLayers,
  rebuildModel,
  registerPeftMethod,
  UnsupportedLayerError,
  PeftError,
  type PeftMethod,
  type PeftModel,
  type TargetModules,
} from '@tfjs-peft/core';
import {
  BottleneckAdapter,
  type BottleneckAdapterKind,
  type BottleneckAdapterSettings,
  type BottleneckComposition,
} from './bottleneck-adapter';
import { BottleneckConfig } from './bottleneck-config';
import { BottleneckSizeError } from './bottleneck-errors';

type Layer = tfl.layers.Layer;
type SymbolicTensor = tfl.SymbolicTensor;

/**
 * Layer-name suffixes of a transformer block, as @tfjs-peft/models names them (`encoder/layer_{i}/…`).
 * A user's own transformer takes part in the presets by using the same suffixes; any other model
 * uses `{ after: [...] }`.
 */
export const TRANSFORMER_BLOCK_SUFFIXES = {
  attentionOutput: 'attention/attention_output',
  feedForwardOutput: 'ffn/output',
} as const;

function presetTargets(placement: BottleneckConfig['placement']): TargetModules {
  if (typeof placement !== 'string') return placement.after;
  if (placement === 'houlsby')
    return [TRANSFORMER_BLOCK_SUFFIXES.attentionOutput, TRANSFORMER_BLOCK_SUFFIXES.feedForwardOutput];
  return [TRANSFORMER_BLOCK_SUFFIXES.feedForwardOutput];
}

/** The width an adapter after `layer` works on: the last axis of the layer's (single) output. */
function outputWidth(layer: Layer): number {
  const node = layer.inboundNodes[0];
  if (!node) throw new PeftError(`Layer "${layer.name}" is not connected in the model: no output to adapt`);
  const shapes = node.outputShapes;
  const shape = (Array.isArray(shapes[0]) || shapes[0] === undefined ? shapes : [shapes]) as tfl.Shape[];
  if (shape.length !== 1) {
    throw new UnsupportedLayerError(layer.name, layer.getClassName(), 'layers with a single output tensor');
  }
  const dataFormat = (layer.getConfig() as { dataFormat?: string }).dataFormat;
  if (dataFormat === 'channelsFirst') {
    throw new UnsupportedLayerError(
      layer.name,
      layer.getClassName(),
      "channels-last layers (the adapter's projections act on the last axis; this layer is channelsFirst)",
    );
  }
  const width = shape[0][shape[0].length - 1];
  if (shape[0].length < 2 || width == null) {
    throw new UnsupportedLayerError(
      layer.name,
      layer.getClassName(),
      `layers whose output has a known last axis (this one has shape [${shape[0].join(', ')}])`,
    );
  }
  return width;
}

/**
 * The first projection of the feed-forward block that ends in `outputLayer`: walking up from it
 * through single-input layers (activation, dropout, …), the nearest Dense. Its input is the block's
 * feed-forward input, which a parallel adapter reads.
 */
function feedForwardEntry(outputLayer: Layer): Layer {
  let tensor = outputLayer.inboundNodes[0].inputTensors;
  for (let steps = 0; steps < 16; steps++) {
    if (tensor.length !== 1) break;
    const layer = tensor[0].sourceLayer;
    const inner = isPeftLayer(layer) && layer.baseLayer ? layer.baseLayer : layer;
    if (inner.getClassName() === 'Dense') return layer;
    if (layer.getClassName() === 'InputLayer') break;
    tensor = layer.inboundNodes[tensor[0].nodeIndex].inputTensors;
  }
  throw new UnsupportedLayerError(
    outputLayer.name,
    outputLayer.getClassName(),
    "feed-forward output projections preceded by a Dense first projection (a 'parallel' adapter reads that projection's input)",
  );
}

function uniqueName(wanted: string, taken: Set<string>): string {
  let name = wanted;
  for (let i = 2; taken.has(name); i++) name = `${wanted}_${i}`;
  taken.add(name);
  return name;
}

/** The user's layers (wrappers stand for their base layer) mapped to the layer in the graph. */
function graphLayers(layers: readonly Layer[]): Map<Layer, Layer> {
  // Match against the user's layers: inserted adapters are not targets, wrappers stand for their base.
  const graphLayerOf = new Map<Layer, Layer>();
  for (const layer of layers) {
    if (!isPeftLayer(layer)) graphLayerOf.set(layer, layer);
    else if (layer.baseLayer) graphLayerOf.set(layer.baseLayer, layer);
  }
  return graphLayerOf;
}

/** Each targeted layer with its output width and the adapter's bottleneck width there. */
function planAdapters(graphLayerOf: ReadonlyMap<Layer, Layer>, config: BottleneckConfig) {
  const selected = matchTargetLayers([...graphLayerOf.keys()], presetTargets(config.placement));
  return selected.map((target) => {
    const width = outputWidth(graphLayerOf.get(target)!);
    const bottleneck = Math.floor(width / config.reductionFactor);
    if (bottleneck < 1) throw new BottleneckSizeError(target.name, width, config.reductionFactor);
    return { target, width, bottleneck };
  });
}

/** Model-level bottleneck adapters: inserts (or extends) one BottleneckAdapter per placement point. */
export const bottleneckMethod: PeftMethod<BottleneckConfig> = {
  peftType: 'BOTTLENECK',
  configFromJson: (json) => BottleneckConfig.fromJson(json),
  checkConfigAgainstFile(model, config, shapes) {
    // Before any variable exists: a tiny reduction_factor must not make the loader allocate
    // bottlenecks far wider than any the file holds.
    const fileBottlenecks = [...shapes]
      .filter(([key]) => key.endsWith('.adapter_down.weight'))
      .map(([, shape]) => shape[0] ?? 0);
    const largest = Math.max(0, ...fileBottlenecks);
    for (const { target, bottleneck } of planAdapters(graphLayers(collectLayers(model)), config)) {
      if (bottleneck > largest) {
        throw new AdapterMismatchError(
          `${target.name}.adapter_down.weight`,
          `adapter_config.json's reduction_factor ${config.reductionFactor} gives a bottleneck of ` +
            `${bottleneck} units after layer "${target.name}" but the file's widest is ${largest}`,
        );
      }
    }
  },
  inject(model, config, adapterName) {
    const layers = collectLayers(model);
    const kind: BottleneckAdapterKind = config.placement === 'parallel' ? 'parallel' : 'sequential';
    const existing = new Map<string, BottleneckAdapter>();
    for (const layer of layers)
      if (layer instanceof BottleneckAdapter) existing.set(`${layer.kind}:${layer.targetLayerName}`, layer);
    const graphLayerOf = graphLayers(layers);
    const plan = planAdapters(graphLayerOf, config).map((step) => ({
      ...step,
      entry: kind === 'parallel' ? feedForwardEntry(graphLayerOf.get(step.target)!) : null,
    }));

    const takenNames = new Set(layers.map((l) => l.name));
    // New layers follow the composition already chosen for this model's adapters.
    const composition = [...existing.values()][0]?.composition ?? 'stack';
    const created = new Map<Layer, { adapter: BottleneckAdapter; entry: Layer | null }>();
    const extended: BottleneckAdapter[] = [];
    try {
      for (const { target, width, bottleneck, entry } of plan) {
        const settings: BottleneckAdapterSettings = {
          bottleneck,
          nonLinearity: config.nonLinearity,
          scaling: config.scaling,
          layerNorm: config.layerNorm,
          initWeights: config.initWeights,
        };
        const current = existing.get(`${kind}:${target.name}`);
        if (current) {
          current.addAdapter(adapterName, settings);
          extended.push(current);
          continue;
        }
        const suffix = kind === 'parallel' ? 'parallel_adapter' : 'adapter';
        const adapter = new BottleneckAdapter({
          name: uniqueName(`${target.name}/${suffix}`, takenNames),
          kind,
          targetLayerName: target.name,
          width,
          adapters: { [adapterName]: settings },
          composition,
        });
        created.set(graphLayerOf.get(target)!, { adapter, entry });
      }
    } catch (error) {
      extended.forEach((a) => a.adapterNames().includes(adapterName) && a.deleteAdapter(adapterName));
      created.forEach(({ adapter }) => adapter.disposeWeights());
      throw error;
    }
    if (created.size === 0) return model;

    const entries = new Set([...created.values()].map((c) => c.entry).filter((e): e is Layer => e !== null));
    const entryInputs = new Map<Layer, SymbolicTensor>();
    try {
      return rebuildModel(model, (layer, inputs, callArgs) => {
        if (entries.has(layer)) entryInputs.set(layer, Array.isArray(inputs) ? inputs[0] : inputs);
        const insert = created.get(layer);
        if (!insert) return undefined;
        const output = layer.apply(inputs, callArgs) as SymbolicTensor;
        if (insert.entry === null) return insert.adapter.apply(output) as SymbolicTensor;
        const feedForwardInput = entryInputs.get(insert.entry);
        if (!feedForwardInput)
          throw new PeftError(`Layer "${layer.name}": its feed-forward input was not reached before it`);
        // The pass-through tensor first: removing the layer keeps the feed-forward output.
        return insert.adapter.apply([output, feedForwardInput]) as SymbolicTensor;
      });
    } catch (error) {
      extended.forEach((a) => a.deleteAdapter(adapterName));
      created.forEach(({ adapter }) => adapter.disposeWeights());
      throw error;
    }
  },
};

registerPeftMethod(bottleneckMethod);

/**
 * How several active bottleneck adapters combine where they share a layer: 'stack' (default) runs
 * them in sequence in the order given to setAdapter; 'average' averages their outputs.
 */
export function setAdapterComposition(peft: PeftModel, composition: BottleneckComposition): void {
  for (const layer of peft.peftLayers())
    if (layer instanceof BottleneckAdapter) layer.setComposition(composition);
}
