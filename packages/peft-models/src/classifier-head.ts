import {
  layers,
  model as functionalModel,
  type LayersModel,
  type SymbolicTensor,
} from '@tensorflow/tfjs-layers';
import { layerNames } from './encoder/layer-names';

export interface ClassifierHeadOptions {
  /** 'softmax' (default) for probabilities, 'linear' for logits. */
  activation?: 'softmax' | 'linear';
  /** Feed the head from this layer's output instead of the model's output (e.g. 'pooler/activation'). */
  featureLayer?: string;
  /** Name of the returned model. */
  name?: string;
}

/**
 * Puts a Dense head named `classifier` ([features] → numClasses) on a model with one output.
 * The returned model shares the base model's layers (and weights) and inputs.
 */
export function withClassifierHead(
  base: LayersModel,
  numClasses: number,
  options: ClassifierHeadOptions = {},
): LayersModel {
  const features =
    options.featureLayer != null
      ? (base.getLayer(options.featureLayer).output as SymbolicTensor)
      : (base.outputs[0] as SymbolicTensor);
  if (features.shape.length !== 2) {
    throw new Error(`withClassifierHead needs [batch, features], got shape [${features.shape.join(', ')}].`);
  }
  const head = layers.dense({
    name: layerNames.classifier,
    units: numClasses,
    activation: options.activation ?? 'softmax',
  });
  return functionalModel({
    name: options.name ?? `${base.name}_classifier`,
    inputs: base.inputs,
    outputs: head.apply(features) as SymbolicTensor,
  });
}
