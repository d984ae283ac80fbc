// Finite-difference check of tfjs's analytic gradients (tf.grads) for a scalar function.
import * as tf from '@tensorflow/tfjs-core';

export interface CheckGradientsOptions {
  /**
   * Central-difference step. Default 5e-3 ≈ cbrt(float32 machine epsilon 1.19e-7): with float32
   * evaluation, the rounding error of (f(x+h) - f(x-h)) / 2h grows like eps_f32·|f|/h and the
   * truncation error like h²·|f'''|/6; h ≈ eps_f32^(1/3) balances them at about 1e-5 relative for
   * O(1) functions. Much smaller steps (1e-4, float64 habits) make the numeric gradient noise.
   */
  epsilon?: number;
  /** Allowed |analytic − numeric| ≤ tolerance · max(1, |analytic|, |numeric|). Default 1e-2. */
  tolerance?: number;
  /** Check at most this many elements per variable (evenly spread), for larger tensors. Default all. */
  maxElementsPerVariable?: number;
}

export interface GradientCheckResult {
  /** Largest scaled error found (see `tolerance`). */
  maxError: number;
  /** Number of elements compared. */
  checked: number;
}

async function scalarValue(t: tf.Tensor): Promise<number> {
  if (t.size !== 1) throw new Error(`checkGradients: f must return a scalar, got shape [${t.shape}]`);
  return (await t.data())[0];
}

/**
 * Compares tf.grads(f) at `variables` with central finite differences on every element (or a
 * spread subset) and throws, naming the variable and element, when they disagree. `f` receives
 * tensors with the same shapes as `variables` and must use them (not the originals) and return a
 * scalar. Inputs are not modified or disposed; every tensor created here is disposed.
 */
export async function checkGradients(
  f: (variables: tf.Tensor[]) => tf.Tensor,
  variables: readonly tf.Tensor[],
  options: CheckGradientsOptions = {},
): Promise<GradientCheckResult> {
  const epsilon = options.epsilon ?? 5e-3;
  const tolerance = options.tolerance ?? 1e-2;
  const analytic = tf.tidy(() => tf.grads((...xs: tf.Tensor[]) => f(xs) as tf.Scalar)([...variables]));
  let maxError = 0;
  let checked = 0;
  try {
    for (let v = 0; v < variables.length; v++) {
      const variable = variables[v];
      const base = Float32Array.from(await variable.data());
      const grad = await analytic[v].data();
      const count = Math.min(base.length, options.maxElementsPerVariable ?? base.length);
      for (let k = 0; k < count; k++) {
        const i = count === base.length ? k : Math.floor((k * base.length) / count);
        const original = base[i];
        const plusValue = Math.fround(original + epsilon);
        const minusValue = Math.fround(original - epsilon);
        const evaluate = async (value: number) => {
          base[i] = value;
          const inputs = variables.map((x, j) => (j === v ? tf.tensor(base, x.shape, 'float32') : x));
          const out = tf.tidy(() => f(inputs));
          try {
            return await scalarValue(out);
          } finally {
            out.dispose();
            inputs[v].dispose();
          }
        };
        const fPlus = await evaluate(plusValue);
        const fMinus = await evaluate(minusValue);
        base[i] = original;
        const numeric = (fPlus - fMinus) / (plusValue - minusValue); // the float32 step actually taken
        const error = Math.abs(grad[i] - numeric) / Math.max(1, Math.abs(grad[i]), Math.abs(numeric));
        checked++;
        if (!(error <= tolerance)) {
          const name = (variable as tf.Variable).name ?? `variables[${v}]`;
          throw new Error(
            `gradient mismatch for ${name} element ${i} of shape [${variable.shape}]: analytic ${grad[i]}, ` +
              `numeric ${numeric} (scaled error ${error} > tolerance ${tolerance}, epsilon ${epsilon})`,
          );
        }
        maxError = Math.max(maxError, error);
      }
    }
  } finally {
    tf.dispose(analytic);
  }
  return { maxError, checked };
}
