import { add, mul, scalar, serialization, tanh, tidy, type Tensor } from '@tensorflow/tfjs-core';

/**
 * GPT-2's `gelu_new` (the tanh approximation of GELU) under the name tfjs 4.22 looks for when it
 * loads a saved model: tfjs-layers registers the activation as `gelu_new`, but its loader
 * camel-cases every string in a model's config, so a saved `gelu_new` comes back as `geluNew`
 * and is not found. Registering `geluNew` lets models with `gelu_new` activations round-trip.
 * 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 */
export class GeluNewAlias extends serialization.Serializable {
  static readonly className = 'geluNew';

  override getClassName(): string {
    return GeluNewAlias.className;
  }

  apply(x: Tensor): Tensor {
    return tidy(() => {
      const cube = mul(mul(x, x), x);
      const inner = mul(add(x, mul(cube, scalar(0.044715))), scalar(Math.sqrt(2 / Math.PI)));
      return mul(mul(x, scalar(0.5)), add(scalar(1), tanh(inner)));
    });
  }

  getConfig(): serialization.ConfigDict {
    return {};
  }
}
serialization.registerClass(GeluNewAlias);
