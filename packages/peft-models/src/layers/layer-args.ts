import { layers, type Shape } from '@tensorflow/tfjs-layers';
import type { Tensor } from '@tensorflow/tfjs-core';

/** The constructor arguments every tfjs layer takes (name, trainable, dtype, …). */
export type LayerArgs = NonNullable<ConstructorParameters<typeof layers.Layer>[0]>;

export type Kwargs = Record<string, unknown>;

export function asTensorList(inputs: Tensor | Tensor[]): Tensor[] {
  return Array.isArray(inputs) ? inputs : [inputs];
}

export function asShapeList(inputShape: Shape | Shape[]): Shape[] {
  return Array.isArray(inputShape[0]) ? (inputShape as Shape[]) : [inputShape as Shape];
}
