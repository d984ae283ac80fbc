import * as tf from '@tensorflow/tfjs-core';
import { PeftConfigError } from '@tfjs-peft/core';
import { LoraLayer, type LoraAdapter, type LoraLayerArgs } from './lora-layer';

/** A Conv2D layer's fields at run time. */
interface Conv2DInternals {
  kernel: { read(): tf.Tensor; shape: number[] };
  strides: [number, number];
  padding: 'same' | 'valid';
  dilationRate: [number, number];
  dataFormat: 'channelsLast' | 'channelsFirst';
}

/**
 * LoRA on a Conv2D layer, as Hugging Face PEFT does it: A is a convolution with the layer's kernel
 * size, strides, padding and dilation and r filters ([kh, kw, in, r]); B a 1×1 convolution to the
 * layer's filters ([1, 1, r, out]). ΔW[kh, kw, in, out] = scale · Σ_r A[kh, kw, in, r]·B[r, out].
 * The frozen base convolution runs with separate bias and activation ops, whose gradient (unlike the
 * fused one's) never computes the frozen kernel's gradient.
 */
export class LoraConv2D extends LoraLayer {
  static className = 'LoraConv2D';

  constructor(args: LoraLayerArgs) {
    super(args);
    if (this.conv.dataFormat === 'channelsFirst') {
      throw new PeftConfigError(
        'dataFormat',
        'channelsFirst',
        `LoRA on Conv2D layer "${args.layer.name}" needs channelsLast`,
      );
    }
  }

  private get conv(): Conv2DInternals {
    return this.baseLayer as unknown as Conv2DInternals;
  }

  private get kernelShape(): [number, number, number, number] {
    return this.base.kernel.shape as [number, number, number, number];
  }

  protected adapterWeightSpecs(adapter: LoraAdapter) {
    const [kh, kw, inChannels, outChannels] = this.kernelShape;
    return {
      a: [kh, kw, inChannels, adapter.r],
      b: [1, 1, adapter.r, outChannels],
      ...this.initializers(adapter, kh * kw * inChannels, adapter.r),
    };
  }

  private convolve(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor4D {
    const { strides, padding, dilationRate } = this.conv;
    return tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, strides, padding, 'NHWC', dilationRate);
  }

  protected baseForward(x: tf.Tensor, kernel: tf.Tensor): tf.Tensor {
    const y = this.convolve(x, kernel);
    return this.base.useBias && this.base.bias ? tf.add(y, this.base.bias.read()) : y;
  }

  protected loraForward(x: tf.Tensor, adapter: LoraAdapter, training: boolean): tf.Tensor {
    const input = training && adapter.loraDropout > 0 ? tf.dropout(x, adapter.loraDropout) : x;
    const down = this.convolve(input, adapter.loraA!.read());
    return tf.mul(tf.conv2d(down, adapter.loraB!.read() as tf.Tensor4D, 1, 'valid'), adapter.scale);
  }

  deltaWeight(name: string): tf.Tensor4D {
    const adapter = this.requireAdapter(name);
    const [kh, kw, inChannels, outChannels] = this.kernelShape;
    return tf.tidy(() => {
      const a = tf.reshape(adapter.loraA!.read(), [kh * kw * inChannels, adapter.r]);
      const b = tf.reshape(adapter.loraB!.read(), [adapter.r, outChannels]);
      return tf.reshape(tf.mul(tf.matMul(a, b), adapter.scale), [
        kh,
        kw,
        inChannels,
        outChannels,
      ]) as tf.Tensor4D;
    });
  }

  /** PyTorch's Conv2d weights are [out, in, kh, kw] (OIHW); tfjs's are [kh, kw, in, out] (HWIO). */
  protected toPeftLayout(tensor: tf.Tensor): tf.Tensor {
    return tf.transpose(tensor, [3, 2, 0, 1]);
  }

  protected fromPeftLayout(tensor: tf.Tensor): tf.Tensor {
    return tf.transpose(tensor, [2, 3, 1, 0]);
  }
}
tf.serialization.registerClass(LoraConv2D);
