import { serialization, split, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { layers, type Shape } from '@tensorflow/tfjs-layers';
import { asShapeList, asTensorList, type LayerArgs } from './layer-args';

export interface SplitLastAxisArgs extends LayerArgs {
  /** Number of equal parts; the last dimension must be divisible by it. */
  numSplits: number;
}

/**
 * Splits [..., n·w] into `numSplits` tensors [..., w] (no weights). A fused projection (GPT-2's
 * `c_attn`, width 3·hidden) goes through it to give `MultiHeadAttentionCore` its query, key and
 * value, so the core and anything wrapping it (prefix tuning) see the same inputs as with three
 * separate projections.
 */
export class SplitLastAxis extends layers.Layer {
  static readonly className = 'SplitLastAxis';
  readonly numSplits: number;

  constructor(args: SplitLastAxisArgs) {
    super(args);
    if (!Number.isInteger(args.numSplits) || args.numSplits < 1) {
      throw new Error(`SplitLastAxis numSplits must be a positive integer, got ${args.numSplits}.`);
    }
    this.numSplits = args.numSplits;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape[] {
    const [x] = asShapeList(inputShape);
    const width = x[x.length - 1];
    if (width != null && width % this.numSplits !== 0) {
      throw new Error(`SplitLastAxis "${this.name}": width ${width} is not divisible by ${this.numSplits}.`);
    }
    const part = width == null ? null : width / this.numSplits;
    return Array.from({ length: this.numSplits }, () => [...x.slice(0, -1), part]);
  }

  override call(inputs: Tensor | Tensor[]): Tensor[] {
    return tidy(() => {
      const x = asTensorList(inputs)[0];
      return split(x, this.numSplits, x.rank - 1);
    });
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), numSplits: this.numSplits };
  }
}
serialization.registerClass(SplitLastAxis);
