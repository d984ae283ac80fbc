import { matMul, reshape, serialization, tidy, type Tensor } from '@tensorflow/tfjs-core';
import { layers, type Shape, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { asShapeList, asTensorList, type Kwargs, type LayerArgs } from './layer-args';
import type { TokenAndPositionEmbedding } from './token-and-position-embedding';

export interface TiedEmbeddingHeadArgs extends LayerArgs {
  /** The embedding layer whose token table the head multiplies by (transposed). */
  embedding?: TokenAndPositionEmbedding;
  /**
   * Its name; enough when deserialising: the layer is found upstream of the head's input when the
   * head is applied. Default `embedding.name`.
   */
  tiedTo?: string;
}

function camelCase(name: string): string {
  return name.replace(/_(.)/g, (_, c: string) => c.toUpperCase());
}

/**
 * A language-model head tied to the input embeddings (GPT-2's `lm_head`): [batch, length, dim] →
 * logits = x · Eᵀ [batch, length, vocabSize], where E is the embedding layer's token table — the
 * same variable, read at every call, so training either use trains both, and the head owns no
 * weights (saved once, counted once).
 */
export class TiedEmbeddingHead extends layers.Layer {
  static readonly className = 'TiedEmbeddingHead';
  readonly tiedTo: string;
  private embedding: TokenAndPositionEmbedding | null;

  constructor(args: TiedEmbeddingHeadArgs) {
    super(args);
    const tiedTo = args.tiedTo ?? args.embedding?.name;
    if (!tiedTo) throw new Error('TiedEmbeddingHead needs the embedding layer or its name (tiedTo).');
    this.tiedTo = tiedTo;
    this.embedding = args.embedding ?? null;
  }

  /** Finds the embedding layer named `tiedTo` upstream of `input` (deserialised models). */
  private resolve(input: SymbolicTensor): TokenAndPositionEmbedding {
    const seen = new Set<unknown>();
    const stack = [input];
    while (stack.length > 0) {
      const tensor = stack.pop()!;
      const layer = tensor.sourceLayer;
      if (!layer || seen.has(layer)) continue;
      seen.add(layer);
      // tfjs camel-cases config strings when it loads a model ('lm_head' comes back 'lmHead').
      if (layer.name === this.tiedTo || camelCase(layer.name) === this.tiedTo) {
        return layer as unknown as TokenAndPositionEmbedding;
      }
      const node = layer.inboundNodes[tensor.nodeIndex];
      if (node) stack.push(...node.inputTensors);
    }
    throw new Error(`TiedEmbeddingHead "${this.name}": no layer "${this.tiedTo}" upstream of its input.`);
  }

  override apply(
    inputs: Tensor | Tensor[] | SymbolicTensor | SymbolicTensor[],
    kwargs?: Kwargs,
  ): Tensor | Tensor[] | SymbolicTensor | SymbolicTensor[] {
    if (this.embedding == null) {
      const first = Array.isArray(inputs) ? inputs[0] : inputs;
      if ('sourceLayer' in first) this.embedding = this.resolve(first as SymbolicTensor);
    }
    return super.apply(inputs, kwargs);
  }

  private get table() {
    if (this.embedding == null) {
      throw new Error(
        `TiedEmbeddingHead "${this.name}" is not tied yet: apply it to a symbolic tensor first.`,
      );
    }
    return this.embedding.tokenEmbeddings;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [x] = asShapeList(inputShape);
    return [...x.slice(0, -1), this.table.shape[0]];
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tidy(() => {
      const x = asTensorList(inputs)[0];
      const table = this.table.read();
      const [vocabSize, dim] = table.shape as [number, number];
      const rows = reshape(x, [-1, dim]);
      return reshape(matMul(rows, table, false, true), [...x.shape.slice(0, -1), vocabSize]);
    });
  }

  override getConfig(): serialization.ConfigDict {
    return { ...super.getConfig(), tiedTo: this.tiedTo };
  }
}
serialization.registerClass(TiedEmbeddingHead);
