import {
  add,
  mean,
  mul,
  rsqrt,
  scalar,
  serialization,
  square,
  sub,
  tidy,
  type Tensor,
} from '@tensorflow/tfjs-core';
import { initializers, layers, type LayerVariable, type Shape } from '@tensorflow/tfjs-layers';
import { asShapeList, asTensorList, type LayerArgs } from './layer-args';

export interface LayerNormArgs extends LayerArgs {
  /** Added to the variance; default 1e-6 (the Universal Sentence Encoder's). */
  epsilon?: number;
}

/**
 * Layer normalisation over the last axis: gamma * (x − mean) / sqrt(variance + epsilon) + beta.
 * `beta` is a bias (BitFit selects it); `gamma` a scale.
 */
export class LayerNorm extends layers.Layer {
  static readonly className = 'LayerNorm';
  readonly epsilon: number;
  private gamma!: LayerVariable;
  private beta!: LayerVariable;

  constructor(args: LayerNormArgs = {}) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-6;
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = asShapeList(inputShape)[0];
    const dim = shape[shape.length - 1];
    if (dim == null) throw new Error('LayerNorm needs a known last dimension.');
    this.gamma = this.addWeight('gamma', [dim], 'float32', initializers.ones());
    this.beta = this.addWeight('beta', [dim], 'float32', initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return asShapeList(inputShape)[0];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tidy(() => {
      const x = asTensorList(inputs)[0];
      const centered = sub(x, mean(x, -1, true));
      const variance = mean(square(centered), -1, true);
      const normalised = mul(centered, rsqrt(add(variance, scalar(this.epsilon))));
      return add(mul(normalised, this.gamma.read()), this.beta.read());
    });
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon };
  }
}
serialization.registerClass(LayerNorm);
