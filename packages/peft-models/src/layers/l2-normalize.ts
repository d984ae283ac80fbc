import {
  maximum,
  mul,
  rsqrt,
  scalar,
  serialization,
  square,
  sum,
  tidy,
  type Tensor,
} from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { asShapeList, asTensorList, type LayerArgs } from './layer-args';

export interface L2NormalizeArgs extends LayerArgs {
  /** Lower bound of the squared norm; default 1e-12. */
  epsilon?: number;
}

/** x / sqrt(max(sum(x²), epsilon)) over the last axis. */
export class L2Normalize extends layers.Layer {
  static readonly className = 'L2Normalize';
  readonly epsilon: number;

  constructor(args: L2NormalizeArgs = {}) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-12;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return asShapeList(inputShape)[0];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tidy(() => {
      const x = asTensorList(inputs)[0];
      return mul(x, rsqrt(maximum(sum(square(x), -1, true), scalar(this.epsilon))));
    });
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}
serialization.registerClass(L2Normalize);
