import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

type LayerVariable = tfl.LayerVariable;
type Initializer = ReturnType<typeof tfl.initializers.zeros>;

/** Creates a named variable owned by a layer (the layer's addWeight). */
export type VariableFactory = (name: string, shape: number[], init: Initializer) => LayerVariable;

/**
 * One adapter's prompt: a table of `rows` learned vectors, optionally passed through a
 * reparameterisation (prefix MLP, P-tuning MLP or LSTM). `value()` is what the model uses and what
 * PEFT saves as `prompt_embeddings` ([rows, width]); `fold()` replaces the reparameterisation by
 * its output, as a PEFT checkpoint does.
 */
export class PromptParameters {
  private encoder: PromptEncoderNet | null;
  constructor(
    public embedding: LayerVariable,
    encoder: PromptEncoderNet | null,
    readonly width: number,
  ) {
    this.encoder = encoder;
  }

  get rows(): number {
    return this.embedding.shape[0] as number;
  }

  get hasEncoder(): boolean {
    return this.encoder !== null;
  }

  /** [rows, width]. */
  value(): tf.Tensor2D {
    if (!this.encoder) return this.embedding.read() as tf.Tensor2D;
    const encoder = this.encoder;
    return tf.tidy(() => encoder.apply(this.embedding.read() as tf.Tensor2D));
  }

  variables(): LayerVariable[] {
    return [this.embedding, ...(this.encoder?.variables() ?? [])];
  }

  /** Replaces table + encoder by a single table holding `values` (or the encoder's current output). */
  fold(create: VariableFactory, name: string, values?: tf.Tensor2D): void {
    const next = values ?? this.value();
    const variable = create(name, next.shape, tfl.initializers.zeros());
    variable.write(next);
    if (!values) next.dispose();
    variable.trainable = this.embedding.trainable;
    this.dispose();
    this.embedding = variable;
    this.encoder = null;
  }

  dispose(): void {
    this.embedding.dispose();
    this.encoder?.dispose();
  }
}

export interface PromptEncoderNet {
  apply(x: tf.Tensor2D): tf.Tensor2D;
  variables(): LayerVariable[];
  dispose(): void;
}

/** PyTorch nn.Linear's default initialisation: U(−1/√fanIn, 1/√fanIn) for weight and bias. */
function torchUniform(fanIn: number): Initializer {
  const bound = 1 / Math.sqrt(fanIn);
  return tfl.initializers.randomUniform({ minval: -bound, maxval: bound });
}

interface Linear {
  kernel: LayerVariable;
  bias: LayerVariable;
}

function linear(create: VariableFactory, name: string, inDim: number, outDim: number): Linear {
  return {
    kernel: create(`${name}_kernel`, [inDim, outDim], torchUniform(inDim)),
    bias: create(`${name}_bias`, [outDim], torchUniform(inDim)),
  };
}

function applyLinear(x: tf.Tensor2D, l: Linear): tf.Tensor2D {
  return tf.add(tf.matMul(x, l.kernel.read() as tf.Tensor2D), l.bias.read()) as tf.Tensor2D;
}

/** A chain of Linear layers with an activation between them (none after the last). */
export function mlpEncoder(
  create: VariableFactory,
  name: string,
  sizes: number[],
  activation: 'tanh' | 'relu',
): PromptEncoderNet {
  const layers: Linear[] = [];
  for (let i = 0; i + 1 < sizes.length; i++)
    layers.push(linear(create, `${name}_${i}`, sizes[i], sizes[i + 1]));
  return {
    apply: (x) =>
      tf.tidy(() => {
        let h = x;
        layers.forEach((l, i) => {
          h = applyLinear(h, l);
          if (i + 1 < layers.length) h = activation === 'tanh' ? tf.tanh(h) : tf.relu(h);
        });
        return h;
      }),
    variables: () => layers.flatMap((l) => [l.kernel, l.bias]),
    dispose: () => layers.forEach((l) => (l.kernel.dispose(), l.bias.dispose())),
  };
}

/**
 * P-tuning's LSTM encoder: `numLayers` bidirectional LSTMs (hidden `hidden` each way) over the
 * virtual tokens as one sequence, then Linear(2h → 2h) → ReLU → Linear(2h → width).
 */
export function lstmEncoder(
  create: VariableFactory,
  name: string,
  inDim: number,
  hidden: number,
  numLayers: number,
  width: number,
): PromptEncoderNet {
  const rnns: tfl.layers.Layer[] = [];
  let size = inDim;
  for (let i = 0; i < numLayers; i++) {
    const rnn = tfl.layers.bidirectional({
      layer: tfl.layers.lstm({
        units: hidden,
        returnSequences: true,
        name: `${name}_lstm_${i}`,
        // tfjs's default orthogonal recurrent initializer fails outside a graph build (QR on a non-tensor).
        recurrentInitializer: 'glorotUniform',
      }) as tfl.RNN,
      mergeMode: 'concat',
      name: `${name}_bidirectional_${i}`,
    });
    rnn.build([null, null, size]);
    rnns.push(rnn);
    size = 2 * hidden;
  }
  const head = mlpEncoder(create, `${name}_mlp_head`, [2 * hidden, 2 * hidden, width], 'relu');
  return {
    apply: (x) =>
      tf.tidy(() => {
        let h: tf.Tensor = tf.expandDims(x, 0);
        for (const rnn of rnns) h = rnn.apply(h) as tf.Tensor;
        return head.apply(tf.squeeze(h, [0]) as tf.Tensor2D);
      }),
    variables: () => [...rnns.flatMap((r) => r.weights), ...head.variables()],
    dispose: () => {
      rnns.forEach((r) => r.weights.forEach((w) => w.dispose()));
      head.dispose();
    },
  };
}
