import { serialization, tidy, type Tensor, type Tensor2D, type Tensor3D } from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { multiHeadAttention } from '../ops/multi-head-attention';
import { asShapeList, asTensorList, type LayerArgs } from './layer-args';

export interface MultiHeadAttentionCoreArgs extends LayerArgs {
  numHeads: number;
  /** Multiplies the queries; default 1/sqrt(depth per head). */
  scale?: number;
  causal?: boolean;
}

/**
 * The weight-free core of multi-head attention. Inputs: `[query, key, value]` or
 * `[query, key, value, keyMask]`, already projected (the projections are ordinary Dense layers
 * named `query`, `key`, `value`, so LoRA, adapters and BitFit reach them). query/key:
 * [batch, length, heads * depth], value: [batch, keyLength, heads * valueDepth], keyMask:
 * [batch, keyLength] with 1 for tokens and 0 for padding. Output: [batch, queryLength,
 * heads * valueDepth]. All heads go through two batched matMuls.
 */
export class MultiHeadAttentionCore extends layers.Layer {
  static readonly className = 'MultiHeadAttentionCore';
  readonly numHeads: number;
  readonly scale: number | undefined;
  readonly causal: boolean;

  constructor(args: MultiHeadAttentionCoreArgs) {
    super(args);
    this.numHeads = args.numHeads;
    this.scale = args.scale;
    this.causal = args.causal ?? false;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [query, , value] = asShapeList(inputShape);
    return [query[0], query[1], value[2]];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tidy(() => {
      const [query, key, value, keyMask] = asTensorList(inputs);
      if (key == null || value == null) {
        throw new Error('MultiHeadAttentionCore takes [query, key, value] or [query, key, value, keyMask].');
      }
      return multiHeadAttention(
        query as Tensor3D,
        key as Tensor3D,
        value as Tensor3D,
        (keyMask as Tensor2D | undefined) ?? null,
        { numHeads: this.numHeads, scale: this.scale, causal: this.causal },
      );
    });
  }

  override getConfig(): serialization.ConfigDict {
    const config: serialization.ConfigDict = {
      ...super.getConfig(),
      numHeads: this.numHeads,
      causal: this.causal,
    };
    if (this.scale != null) config.scale = this.scale;
    return config;
  }
}
serialization.registerClass(MultiHeadAttentionCore);
