import { PeftError } from '@tfjs-peft/core';

/**
 * BitFit was asked to train biases that do not exist: the model has no bias at all, or explicitly
 * targeted Dense layers were built with `useBias: false`. Lists the layers.
 */
export class NoBiasError extends PeftError {
  constructor(
    readonly layerNames: string[],
    problem: string,
  ) {
    super(problem);
  }
}
