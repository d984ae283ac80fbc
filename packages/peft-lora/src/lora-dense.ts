import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { frozenDense } from '@tfjs-peft/core';
import { LoraLayer, type Kwargs, type LoraAdapter, type LoraLayerArgs } from './lora-layer';

export type { LoraAdapterSettings } from './lora-layer';
export type LoraDenseArgs = LoraLayerArgs;

/**
 * LoRA on a Dense layer: y = act(x·W + b + Σ_active scale · dropout(x)·A·B), W and b frozen and shared
 * with the user's layer; A is [in, r] and B [r, out] (PEFT's lora_A/lora_B transposed). The base
 * product runs through frozenDense, so W gets no gradient. With useDora, DoRA's magnitude too.
 */
export class LoraDense extends LoraLayer {
  static className = 'LoraDense';

  get inputDim(): number {
    return this.base.kernel.shape[0] as number;
  }

  get units(): number {
    return this.base.kernel.shape[1] as number;
  }

  protected adapterWeightSpecs(adapter: LoraAdapter) {
    return {
      a: [this.inputDim, adapter.r],
      b: [adapter.r, this.units],
      ...this.initializers(adapter, this.inputDim, adapter.r),
    };
  }

  protected override createExtraWeights(name: string, adapter: LoraAdapter): void {
    if (!adapter.useDora) return;
    adapter.magnitude = this.addAdapterWeight(
      `lora_magnitude_${name}`,
      [this.units],
      tfl.initializers.ones(),
    );
    // m starts as ‖W + scale·A·B‖ per output unit, so a new DoRA adapter equals its LoRA part.
    const norms = tf.tidy(() => this.columnNorms(this.base.kernel.read(), adapter));
    adapter.magnitude.write(norms);
    norms.dispose();
  }

  protected baseForward(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor {
    const bias = this.base.useBias && this.base.bias ? this.base.bias.read() : null;
    return frozenDense(x, kernel, bias);
  }

  protected loraForward(x: tf.Tensor, adapter: LoraAdapter, training: boolean): tf.Tensor {
    let flat = tf.reshape(x, [-1, this.inputDim]);
    if (training && adapter.loraDropout > 0) flat = tf.dropout(flat, adapter.loraDropout);
    const update = tf.mul(
      tf.matMul(tf.matMul(flat, adapter.loraA!.read()), adapter.loraB!.read()),
      adapter.scale,
    );
    return tf.reshape(update, [...x.shape.slice(0, -1), this.units]);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    const running = this.runningAdapters();
    if (!running.some((n) => this.adapters.get(n)!.useDora)) return super.call(inputs, kwargs);
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return this.activate(this.forwardWithDora(x, running, kwargs?.training === true));
    });
  }

  /**
   * DoRA (Liu et al. 2024), as Hugging Face PEFT computes it: with W' = W + s·A·B and its per-unit
   * norm n (detached from the graph, as in the paper), an adapter adds (m/n − 1)·x·W + (m/n)·s·x·A·B,
   * so that x·W plus that is (m/n)·x·W'. The bias is not rescaled.
   */
  private forwardWithDora(x: tf.Tensor, running: string[], training: boolean): tf.Tensor {
    const kernel = this.currentKernel();
    const flat = tf.reshape(x, [-1, this.inputDim]);
    const product = frozenDense(flat, kernel, null);
    let y = product;
    for (const name of running) {
      const adapter = this.adapters.get(name)!;
      const dropped = training && adapter.loraDropout > 0 ? tf.dropout(flat, adapter.loraDropout) : flat;
      const update = tf.mul(
        tf.matMul(tf.matMul(dropped, adapter.loraA!.read()), adapter.loraB!.read()),
        adapter.scale,
      );
      if (!adapter.useDora) {
        y = tf.add(y, update);
        continue;
      }
      const factor = tf.div(adapter.magnitude!.read(), detach(this.columnNorms(kernel, adapter)));
      const droppedProduct = dropped === flat ? product : frozenDense(dropped, kernel, null);
      y = tf.add(y, tf.add(tf.mul(tf.sub(factor, 1), droppedProduct), tf.mul(factor, update)));
    }
    if (this.base.useBias && this.base.bias) y = tf.add(y, this.base.bias.read());
    return tf.reshape(y, [...x.shape.slice(0, -1), this.units]);
  }

  /** ‖W + scale·A·B‖ over the input axis: one norm per output unit ([out]). */
  private columnNorms(kernel: tf.Tensor, adapter: LoraAdapter): tf.Tensor1D {
    const adapted = tf.add(
      kernel,
      tf.mul(tf.matMul(adapter.loraA!.read(), adapter.loraB!.read()), adapter.scale),
    );
    return tf.sqrt(tf.sum(tf.square(adapted), 0)) as tf.Tensor1D;
  }

  /**
   * What the adapter adds to the kernel, in tfjs layout [in, out]: scale·A·B for LoRA; for DoRA
   * (m/n − 1)·W + (m/n)·scale·A·B, the column-wise rescaling of W' = W + scale·A·B.
   */
  deltaWeight(name: string): tf.Tensor2D {
    const adapter = this.requireAdapter(name);
    return tf.tidy(() => {
      const update = tf.mul(tf.matMul(adapter.loraA!.read(), adapter.loraB!.read()), adapter.scale);
      if (!adapter.useDora) return update as tf.Tensor2D;
      const kernel = this.unmergedKernel ?? this.base.kernel.read();
      const factor = tf.div(adapter.magnitude!.read(), this.columnNorms(kernel, adapter));
      return tf.add(tf.mul(tf.sub(factor, 1), kernel), tf.mul(factor, update)) as tf.Tensor2D;
    });
  }

  /** PyTorch's Linear stores [out, in]; a tfjs Dense kernel is [in, out]. */
  protected toPeftLayout(tensor: tf.Tensor): tf.Tensor {
    return tf.transpose(tensor);
  }

  protected fromPeftLayout(tensor: tf.Tensor): tf.Tensor {
    return tf.transpose(tensor);
  }
}
tf.serialization.registerClass(LoraDense);

/** Identity forward, no gradient: DoRA's weight norm is treated as a constant (Liu et al., §4.3). */
const detach = tf.customGrad(((t: tf.Tensor) => ({
  value: tf.clone(t),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as unknown as Parameters<typeof tf.customGrad>[0]);
