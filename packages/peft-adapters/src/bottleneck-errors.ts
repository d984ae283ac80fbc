import { PeftConfigError, PeftError } from '@tfjs-peft/core';

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

/** Bottleneck adapters are non-linear: there is no weight to fold them into. */
export class AdapterNotMergeableError extends PeftError {
  constructor(
    readonly layerName: string,
    readonly adapterNames: readonly string[],
  ) {
    super(
      `Adapters ${adapterNames.join(', ')} on layer "${layerName}" are bottleneck adapters: ` +
        'up(act(down(h))) is not linear, so it cannot be merged into the base weights; ' +
        'keep the adapters unmerged (or use LoRA/IA³ for merge-able adapters)',
    );
  }
}
