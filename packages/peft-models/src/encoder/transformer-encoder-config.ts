import type { PositionEncoding } from '../layers/token-and-position-embedding';

/** One transformer block. Its input width is the previous block's `hiddenSize` (or the embedding size). */
export interface TransformerBlockConfig {
  /** Width of the block's output (attention output and feed-forward output). */
  hiddenSize: number;
  numHeads: number;
  /** Width of the query/key/value projections; default the block's input width. */
  attentionSize?: number;
  /** Width of the feed-forward `intermediate` layer. */
  intermediateSize: number;
  /** Activation after `intermediate`; any tfjs activation identifier. Default 'relu'. */
  activation?: string;
  /** Multiplies the queries; default 1/sqrt(depth per head). */
  attentionScale?: number;
}

export interface TransformerEncoderConfig {
  vocabSize: number;
  embeddingSize: number;
  positionEncoding: PositionEncoding;
  maxPositions: number;
  /** Multiplies the token embeddings before positions are added (2 for USE-lite, see its builder). */
  tokenScale?: number;
  blocks: TransformerBlockConfig[];
  /** 'pre': x + f(LN(x)) (USE-lite, GPT-2); 'post': LN(x + f(x)) (BERT). */
  normalization: 'pre' | 'post';
  layerNormEpsilon: number;
  /** Layer norm after the embeddings (BERT). */
  embeddingLayerNorm?: boolean;
  /** Layer norm after the last block (GPT-2). */
  finalLayerNorm?: boolean;
  /** Causal (decoder) self-attention. */
  causal?: boolean;
  /**
   * One Dense `qkv` of width 3·attentionSize (GPT-2's `c_attn`) split into query, key and value by
   * a weight-free `SplitLastAxis`, instead of three Dense layers. Default false.
   */
  fusedQkv?: boolean;
  /** Layer names: 'default' (`layerNames`) or 'gpt2' (`gpt2LayerNames`, Hugging Face's module paths). */
  layerNaming?: 'default' | 'gpt2';
  /** Dropout rate after attention output and feed-forward output while training; default 0. */
  dropout?: number;
  /** 'mean' adds a masked mean over the sequence; 'none' returns [batch, length, width]. */
  pooling: 'mean' | 'none';
  /** A Dense `pooler` after the pooling, with this activation. */
  pooler?: { units: number; activation: string };
  /** L2-normalise the final output (a sentence embedding). */
  l2Normalize?: boolean;
}
