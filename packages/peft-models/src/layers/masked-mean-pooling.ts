import {
  cast,
  div,
  expandDims,
  maximum,
  mul,
  scalar,
  serialization,
  sum,
  tidy,
  type Tensor,
} from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { asShapeList, asTensorList, type LayerArgs } from './layer-args';

/**
 * Mean over the sequence of the positions whose mask is 1. Inputs: `[x, mask]`, x
 * [batch, length, dim], mask [batch, length]. Output [batch, dim]; an empty sequence gives zeros
 * (the sum is divided by max(count, 1), as the Universal Sentence Encoder graph does).
 */
export class MaskedMeanPooling extends layers.Layer {
  static readonly className = 'MaskedMeanPooling';

  constructor(args: LayerArgs = {}) {
    super(args);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [x] = asShapeList(inputShape);
    return [x[0], x[2]];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tidy(() => {
      const [x, mask] = asTensorList(inputs);
      if (mask == null) throw new Error('MaskedMeanPooling takes [x, mask].');
      const weights = cast(mask, 'float32');
      const total = sum(mul(x, expandDims(weights, -1)), 1);
      const count = maximum(sum(weights, 1, true), scalar(1));
      return div(total, count);
    });
  }
}
serialization.registerClass(MaskedMeanPooling);
