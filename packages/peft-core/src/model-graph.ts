import * as tfl from '@tensorflow/tfjs-layers';
import { PeftError } from './errors';

type Layer = tfl.layers.Layer;
type SymbolicTensor = tfl.SymbolicTensor;
type Kwargs = Record<string, unknown>;

/**
 * Graph surgery on tfjs layers models. tfjs graphs are immutable once built, so a method that wraps
 * or inserts layers re-applies the model's own layer objects, in order, to the model's own inputs,
 * substituting where asked. Layers and their variables are shared, never copied; nested models are
 * flattened so every layer is reachable by name.
 */
export type LayerTransform = (
  layer: Layer,
  inputs: SymbolicTensor | SymbolicTensor[],
  callArgs: Kwargs,
) => SymbolicTensor | SymbolicTensor[] | undefined;

function isContainer(layer: Layer): layer is tfl.LayersModel {
  const candidate = layer as unknown as { layers?: unknown; outputs?: unknown; inputs?: unknown };
  return (
    Array.isArray(candidate.layers) && Array.isArray(candidate.outputs) && Array.isArray(candidate.inputs)
  );
}

function modelInputs(model: tfl.LayersModel): SymbolicTensor[] {
  if (!model.inputs || model.inputs.length === 0) {
    throw new PeftError(
      `Model "${model.name}" has no inputs yet: build it first (give the first layer an inputShape, or call model.build)`,
    );
  }
  return model.inputs;
}

/** Every layer of the model in topological order, nested models flattened, each once. */
export function collectLayers(model: tfl.LayersModel): Layer[] {
  const seen = new Set<Layer>();
  const out: Layer[] = [];
  const visit = (m: tfl.LayersModel) => {
    for (const layer of m.layers) {
      if (isContainer(layer)) visit(layer);
      else if (!seen.has(layer)) {
        seen.add(layer);
        out.push(layer);
      }
    }
  };
  visit(model);
  return out;
}

/** Names of the layers whose outputs are the model's outputs (the "head", which 'all-dense' skips). */
export function outputLayerNames(model: tfl.LayersModel): Set<string> {
  const names = new Set<string>();
  const visit = (tensor: SymbolicTensor) => {
    const layer = tensor.sourceLayer;
    if (isContainer(layer)) layer.outputs.forEach(visit);
    else names.add(layer.name);
  };
  model.outputs.forEach(visit);
  return names;
}

/** Re-applies every layer of `model` to its inputs, letting `transform` replace any layer call. */
export function rebuildModel(
  model: tfl.LayersModel,
  transform: LayerTransform,
  name = model.name,
): tfl.LayersModel {
  const inputs = modelInputs(model);
  const resolved = new Map<string, SymbolicTensor>();
  let scopeCounter = 0;

  const resolve = (
    tensor: SymbolicTensor,
    scope: string,
    inputMap: Map<number, SymbolicTensor>,
  ): SymbolicTensor => {
    const key = `${scope}:${tensor.id}`;
    const cached = resolved.get(key);
    if (cached) return cached;
    const layer = tensor.sourceLayer;
    if (layer.getClassName() === 'InputLayer') {
      return inputMap.get(tensor.id) ?? tensor;
    }
    const node = layer.inboundNodes[tensor.nodeIndex];
    const newInputs = node.inputTensors.map((t) => resolve(t, scope, inputMap));
    const callInput = newInputs.length === 1 ? newInputs[0] : newInputs;
    let outputs: SymbolicTensor[];
    if (isContainer(layer)) {
      const innerScope = `${scope}/${++scopeCounter}`;
      const innerMap = new Map<number, SymbolicTensor>();
      layer.inputs.forEach((t, i) => innerMap.set(t.id, newInputs[i]));
      outputs = layer.outputs.map((t) => resolve(t, innerScope, innerMap));
    } else {
      const callArgs = { ...(node.callArgs ?? {}) } as Kwargs;
      // A mask recorded at build time refers to the old graph; layers recompute it from their inputs.
      delete callArgs.mask;
      const result = transform(layer, callInput, callArgs) ?? layer.apply(callInput, callArgs);
      outputs = (Array.isArray(result) ? result : [result]) as SymbolicTensor[];
    }
    node.outputTensors.forEach((t, i) => resolved.set(`${scope}:${t.id}`, outputs[i]));
    return outputs[tensor.tensorIndex];
  };

  const outputs = model.outputs.map((t) => resolve(t, 'root', new Map()));
  return tfl.model({ inputs, outputs, name });
}
