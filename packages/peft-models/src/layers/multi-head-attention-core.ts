import { serialization, tidy, type Tensor, type Tensor2D, type Tensor3D } from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { recomputeInBackward } from '@tfjs-peft/core';
import { multiHeadAttention } from '../ops/multi-head-attention';
import { asShapeList, asTensorList, type LayerArgs } from './layer-args';

export interface MultiHeadAttentionCoreArgs extends LayerArgs {
  numHeads: number;
  /** Multiplies the queries; default 1/sqrt(depth per head). */
  scale?: number;
  causal?: boolean;
  /**
   * Gradient checkpointing: keep only the inputs for the backward pass and compute the scores and
   * softmax again there (see `enableGradientCheckpointing`). Default false.
   */
  recompute?: boolean;
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
  /** Gradient checkpointing of this core; switch it with `enableGradientCheckpointing(model)`. */
  recompute: boolean;

  constructor(args: MultiHeadAttentionCoreArgs) {
    super(args);
    this.numHeads = args.numHeads;
    this.scale = args.scale;
    this.causal = args.causal ?? false;
    this.recompute = args.recompute ?? false;
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
      const options = { numHeads: this.numHeads, scale: this.scale, causal: this.causal };
      const attend = (q: Tensor, k: Tensor, v: Tensor, mask?: Tensor) =>
        multiHeadAttention(
          q as Tensor3D,
          k as Tensor3D,
          v as Tensor3D,
          (mask as Tensor2D | undefined) ?? null,
          options,
        );
      if (!this.recompute) return attend(query, key, value, keyMask);
      // The mask gets no gradient; the scores and probabilities ([batch, heads, length, length]) are
      // not kept across the step but computed again in the backward pass.
      const tensors = keyMask == null ? [query, key, value] : [query, key, value, keyMask];
      return recomputeInBackward(attend, { differentiable: [true, true, true, false] })(...tensors);
    });
  }

  override getConfig(): serialization.ConfigDict {
    const config: serialization.ConfigDict = {
      ...super.getConfig(),
      numHeads: this.numHeads,
      causal: this.causal,
    };
    if (this.scale != null) config.scale = this.scale;
    if (this.recompute) config.recompute = true;
    return config;
  }
}
serialization.registerClass(MultiHeadAttentionCore);
