import {
  add,
  cast,
  mul,
  scalar,
  serialization,
  slice,
  tidy,
  tile,
  concat,
  expandDims,
  type Tensor,
  type Tensor2D,
} from '@tensorflow/tfjs-core';
import { initializers, layers, type LayerVariable, type Shape } from '@tensorflow/tfjs-layers';
import { embeddingLookup } from '@tfjs-peft/core';
import { sinusoidalPositions } from '../ops/sinusoidal-positions';
import { asShapeList, asTensorList, type Kwargs, type LayerArgs } from './layer-args';

export type PositionEncoding = 'sinusoidal' | 'learned' | 'none';

export interface TokenAndPositionEmbeddingArgs extends LayerArgs {
  vocabSize: number;
  embeddingSize: number;
  /** 'sinusoidal' (fixed tensor2tensor timing signal), 'learned' (a trainable table) or 'none'. */
  positionEncoding?: PositionEncoding;
  /** Longest sequence; the size of a learned position table. */
  maxPositions?: number;
  /**
   * Multiplies the token embeddings before the positions are added. The Universal Sentence
   * Encoder graph adds its embeddings twice (once with the timing signal), so it uses 2.
   */
  tokenScale?: number;
}

/**
 * Token ids [batch, length] (int32) → tokenScale · E[id] + P[position], [batch, length, dim].
 * Weights: `embeddings` [vocabSize, dim] and, when learned, `position_embeddings`
 * [maxPositions, dim]. The lookup's gradient is a scatter-add (see `embeddingLookup`), so it
 * trains on every backend.
 */
export class TokenAndPositionEmbedding extends layers.Layer {
  static readonly className = 'TokenAndPositionEmbedding';
  readonly vocabSize: number;
  readonly embeddingSize: number;
  readonly positionEncoding: PositionEncoding;
  readonly maxPositions: number;
  readonly tokenScale: number;
  private table!: LayerVariable;
  private positionTable: LayerVariable | null = null;

  constructor(args: TokenAndPositionEmbeddingArgs) {
    super(args);
    this.vocabSize = args.vocabSize;
    this.embeddingSize = args.embeddingSize;
    this.positionEncoding = args.positionEncoding ?? 'sinusoidal';
    this.maxPositions = args.maxPositions ?? 512;
    this.tokenScale = args.tokenScale ?? 1;
  }

  /** The token table [vocabSize, dim] (built on first use), e.g. for an LM head tied to it. */
  get tokenEmbeddings(): LayerVariable {
    if (!this.built) this.build();
    return this.table;
  }

  override build(): void {
    const initializer = initializers.randomNormal({ mean: 0, stddev: 0.02 });
    this.table = this.addWeight('embeddings', [this.vocabSize, this.embeddingSize], 'float32', initializer);
    if (this.positionEncoding === 'learned') {
      this.positionTable = this.addWeight(
        'position_embeddings',
        [this.maxPositions, this.embeddingSize],
        'float32',
        initializer,
      );
    }
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [ids] = asShapeList(inputShape);
    return [...ids, this.embeddingSize];
  }

  /**
   * `kwargs.prefixEmbeddings` (optional, [n, dim] or [batch, n, dim]): vectors prepended to the
   * (scaled) token embeddings before positions are added, so they take positions 0..n−1 and the
   * tokens n..n+length−1 (prompt tuning's virtual tokens, as Hugging Face models see `inputs_embeds`).
   *
   * `kwargs.positionOffset` (optional, a non-negative integer, default 0): the first position, so the
   * sequence takes positions offset..offset+length−1. Hugging Face GPT-2 and BERT number the tokens
   * after any cached keys and values this way, so with PEFT's prefix tuning (n prefixes passed as
   * `past_key_values`) the real tokens sit at positions n.. — pass n here to match. Like
   * `prefixEmbeddings`, pass it from a wrapping layer's `call`: tfjs's `predict` does not replay the
   * kwargs a node was applied with.
   */
  override call(inputs: Tensor | Tensor[], kwargs: Kwargs = {}): Tensor {
    return tidy(() => {
      const ids = cast(asTensorList(inputs)[0], 'int32');
      const prefix = kwargs.prefixEmbeddings as Tensor | undefined;
      const offset = (kwargs.positionOffset as number | undefined) ?? 0;
      if (!Number.isInteger(offset) || offset < 0) {
        throw new Error(`positionOffset must be a non-negative integer, got ${offset}.`);
      }
      const length =
        (ids.shape[1] as number) + (prefix == null ? 0 : (prefix.shape[prefix.rank - 2] as number));
      if (offset + length > this.maxPositions && this.positionEncoding === 'learned') {
        throw new Error(
          `Sequence length ${length}${offset ? ` from position ${offset}` : ''} exceeds maxPositions ${this.maxPositions}.`,
        );
      }
      let x = embeddingLookup(this.table.read() as Tensor2D, ids);
      if (this.tokenScale !== 1) x = mul(x, scalar(this.tokenScale));
      if (prefix != null) {
        const batch = ids.shape[0] as number;
        const rows = prefix.rank === 2 ? tile(expandDims(prefix, 0), [batch, 1, 1]) : prefix;
        x = concat([rows, x], 1);
      }
      if (this.positionEncoding === 'sinusoidal') {
        const signal = sinusoidalPositions(offset + length, this.embeddingSize);
        x = add(x, offset === 0 ? signal : slice(signal, [offset, 0], [length, this.embeddingSize]));
      } else if (this.positionTable != null) {
        x = add(x, slice(this.positionTable.read(), [offset, 0], [length, this.embeddingSize]));
      }
      return x;
    });
  }

  override getConfig(): serialization.ConfigDict {
    return {
      ...super.getConfig(),
      vocabSize: this.vocabSize,
      embeddingSize: this.embeddingSize,
      positionEncoding: this.positionEncoding,
      maxPositions: this.maxPositions,
      tokenScale: this.tokenScale,
    };
  }
}
serialization.registerClass(TokenAndPositionEmbedding);
