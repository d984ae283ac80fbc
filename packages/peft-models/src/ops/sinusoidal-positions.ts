import {
  concat,
  cos,
  exp,
  expandDims,
  mul,
  range,
  scalar,
  sin,
  tidy,
  type Tensor2D,
} from '@tensorflow/tfjs-core';

/**
 * The tensor2tensor timing signal: for positions 0..length−1 and dim/2 timescales spaced
 * geometrically from minTimescale to maxTimescale, [sin(p·t) for t] ++ [cos(p·t) for t].
 * Returns [length, dim].
 */
export function sinusoidalPositions(
  length: number,
  dim: number,
  minTimescale = 1,
  maxTimescale = 1e4,
): Tensor2D {
  return tidy(() => {
    if (dim % 2 !== 0) throw new Error(`Sinusoidal positions need an even width, got ${dim}.`);
    const numTimescales = dim / 2;
    const increment = Math.fround(Math.log(maxTimescale / minTimescale) / Math.max(numTimescales - 1, 1));
    const inverseTimescales = mul(
      scalar(minTimescale),
      exp(mul(range(0, numTimescales, 1, 'float32'), scalar(-increment))),
    );
    const angles = mul(expandDims(range(0, length, 1, 'float32'), 1), expandDims(inverseTimescales, 0));
    return concat([sin(angles), cos(angles)], 1) as Tensor2D;
  });
}
