import { PeftConfigError } from '@tfjs-peft/core';

/** The reduction factor leaves no bottleneck: floor(width / reductionFactor) < 1 for this layer. */
export class BottleneckSizeError extends PeftConfigError {
  constructor(
    readonly layerName: string,
    readonly width: number,
    readonly reductionFactor: number,
  ) {
    super(
      'reductionFactor',
      reductionFactor,
      `larger than the width ${width} of layer "${layerName}": the bottleneck would have ` +
        `floor(${width} / ${reductionFactor}) = 0 units; use a reduction factor of at most ${width}`,
    );
  }
}

/** Bottleneck adapters are non-linear: there is no weight to fold them into (peft-core's error). */
export { AdapterNotMergeableError } from '@tfjs-peft/core';
