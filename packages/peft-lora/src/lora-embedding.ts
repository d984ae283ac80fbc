import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { embeddingLookup } from '@tfjs-peft/core';
import { LoraLayer, type LoraAdapter } from './lora-layer';

/**
 * LoRA on an Embedding layer, as Hugging Face PEFT does it: A is a table [vocab, r] looked up by the
 * token ids, B [r, dim] projects it; ΔE = scale · A·B. PEFT's embedding variant initialises A to
 * zeros and B from N(0, 1), so a new adapter is still a no-op (saved as `lora_embedding_A` [r, vocab]
 * and `lora_embedding_B` [dim, r], without `.weight`). A's lookup gradient is a scatter-add
 * (embeddingLookup), which works on every backend; the frozen table gets none.
 */
export class LoraEmbedding extends LoraLayer {
  static className = 'LoraEmbedding';
  protected override readonly stateKeys = { a: 'lora_embedding_A', b: 'lora_embedding_B' };

  protected override get kernelVariable(): tfl.LayerVariable {
    return (this.baseLayer as unknown as { embeddings: tfl.LayerVariable }).embeddings;
  }

  private get tableShape(): [number, number] {
    return this.kernelVariable.shape as [number, number];
  }

  protected adapterWeightSpecs(adapter: LoraAdapter) {
    const [vocabSize, dim] = this.tableShape;
    const normal = tfl.initializers.randomNormal({ mean: 0, stddev: 1 });
    return {
      a: [vocabSize, adapter.r],
      b: [adapter.r, dim],
      aInit: adapter.initLoraWeights === false ? normal : tfl.initializers.zeros(),
      bInit: normal,
    };
  }

  private ids(x: tf.Tensor): tf.Tensor {
    return x.dtype === 'int32' ? x : tf.cast(x, 'int32');
  }

  protected baseForward(x: tf.Tensor, table: tf.Tensor): tf.Tensor {
    // The table is frozen and the ids are integers: a plain gather, whose gradient is never needed.
    return tf.gather(table, this.ids(x));
  }

  protected loraForward(x: tf.Tensor, adapter: LoraAdapter, training: boolean): tf.Tensor {
    const rows = embeddingLookup(adapter.loraA!.read() as tf.Tensor2D, this.ids(x));
    // PEFT applies no dropout to embedding LoRA (there is no continuous input to drop).
    void training;
    const flat = tf.reshape(rows, [-1, adapter.r]);
    const update = tf.mul(tf.matMul(flat, adapter.loraB!.read()), adapter.scale);
    return tf.reshape(update, [...x.shape, this.tableShape[1]]);
  }

  deltaWeight(name: string): tf.Tensor2D {
    const adapter = this.requireAdapter(name);
    return tf.tidy(
      () => tf.mul(tf.matMul(adapter.loraA!.read(), adapter.loraB!.read()), adapter.scale) as tf.Tensor2D,
    );
  }

  /** PEFT stores lora_embedding_A as [r, vocab] and lora_embedding_B as [dim, r]: transposes of ours. */
  protected toPeftLayout(tensor: tf.Tensor): tf.Tensor {
    return tf.transpose(tensor);
  }

  protected fromPeftLayout(tensor: tf.Tensor): tf.Tensor {
    return tf.transpose(tensor);
  }
}
tf.serialization.registerClass(LoraEmbedding);
