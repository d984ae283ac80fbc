import { tensor2d, type Tensor2D } from '@tensorflow/tfjs-core';
import { Tokenizer, type Vocabulary } from '@tensorflow-models/universal-sentence-encoder/dist/tokenizer/index.js';

export type { Vocabulary };

export interface EncodedBatch {
  /** [batch, maxLength] int32, padded with 0 after each sentence. */
  tokenIds: Tensor2D;
  /** [batch, maxLength] float32: 1 for a token, 0 for padding. */
  attentionMask: Tensor2D;
  /** Tokens per sentence after truncation. */
  lengths: number[];
}

/**
 * The Universal Sentence Encoder's SentencePiece tokenizer (the `Tokenizer` of
 * `@tensorflow-models/universal-sentence-encoder`, run offline on the shipped vocabulary).
 * Unknown characters become id 0; id 0 is also used as padding, told apart by the mask.
 */
export class SentencePieceTokenizer {
  private readonly tokenizer: Tokenizer;

  /** @param maxPositions sentences are cut to this many tokens (USE-lite: 128). */
  constructor(
    readonly vocabulary: Vocabulary,
    readonly maxPositions = 128,
  ) {
    this.tokenizer = new Tokenizer(vocabulary);
  }

  get vocabSize(): number {
    return this.vocabulary.length;
  }

  /** Token ids of one text, not truncated. */
  tokenize(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  /**
   * Tokenises and right-pads a batch. `maxLength` defaults to the longest sentence (at least 1),
   * capped at `maxPositions`; longer sentences are truncated.
   */
  encode(texts: string[], maxLength?: number): EncodedBatch {
    const tokens = texts.map((text) => this.tokenize(text));
    const longest = Math.max(1, ...tokens.map((ids) => ids.length));
    const length = maxLength ?? Math.min(longest, this.maxPositions);
    const ids = new Int32Array(texts.length * length);
    const mask = new Float32Array(texts.length * length);
    const lengths = tokens.map((sentence, row) => {
      const kept = Math.min(sentence.length, length, this.maxPositions);
      for (let i = 0; i < kept; i++) {
        ids[row * length + i] = sentence[i];
        mask[row * length + i] = 1;
      }
      return kept;
    });
    return {
      tokenIds: tensor2d(ids, [texts.length, length], 'int32'),
      attentionMask: tensor2d(mask, [texts.length, length], 'float32'),
      lengths,
    };
  }
}
