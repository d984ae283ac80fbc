import type * as tfl from '@tensorflow/tfjs-layers';

interface LayerWeightLists {
  _trainableWeights: tfl.LayerVariable[];
  _nonTrainableWeights: tfl.LayerVariable[];
  _addedWeightNames: string[];
}

/**
 * Removes variables a layer created with addWeight (an adapter's) from the layer's bookkeeping and
 * disposes them. tfjs-layers remembers every weight name a layer ever added and refuses to add it
 * again, so without this an adapter deleted (or rolled back after a failed load) could never be
 * added again under the same name.
 */
export function releaseLayerWeights(layer: tfl.layers.Layer, variables: readonly tfl.LayerVariable[]): void {
  const lists = layer as unknown as LayerWeightLists;
  const shortNames = new Set(variables.map((v) => v.originalName.split('/').pop()!));
  lists._trainableWeights = lists._trainableWeights.filter((w) => !variables.includes(w));
  lists._nonTrainableWeights = lists._nonTrainableWeights.filter((w) => !variables.includes(w));
  lists._addedWeightNames = lists._addedWeightNames.filter((n) => !shortNames.has(n));
  variables.forEach((v) => v.dispose());
}
