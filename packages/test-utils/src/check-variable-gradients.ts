// Finite-difference check of tf.variableGrads for a loss over a model's trainable variables,
// perturbing the variables in place (the loss reads them; nothing is passed in).
import * as tf from '@tensorflow/tfjs-core';

export interface CheckVariableGradientsOptions {
  /**
   * Central-difference step. Default 1e-2. The loss is evaluated in float32, so the numeric
   * gradient (L(x+h) − L(x−h)) / 2h carries a rounding error of about k·eps_f32·|L| / h
   * (eps_f32 ≈ 1.19e-7; k grows with the number of ops and outputs summed into L, a model's loss
   * is often several ulps off) and a truncation error of about h²·|L'''| / 6. The optimum step is
   * ≈ (k·eps_f32)^(1/3), a little above cbrt(eps_f32) ≈ 5e-3 for a whole network's loss; at
   * h = 1e-2 truncation is ≈ 2e-5·|L'''| and rounding ≈ 1e-5·k·|L|, both far below the 1e-2
   * tolerance for O(1) values, while float64 habits (h = 1e-4..1e-6) would leave mostly noise.
   */
  epsilon?: number;
  /** Allowed |numeric − analytic| ≤ tolerance · max(1, |numeric|). Default 1e-2. */
  tolerance?: number;
  /** Check every stride-th element (0, stride, 2·stride, …) of each variable. Default 1 (all). */
  stride?: number;
}

export interface VariableGradientCheckResult {
  /** Number of elements compared, over all variables. */
  checked: number;
  /** Largest |numeric − analytic| / max(1, |numeric|) found. */
  maxError: number;
}

/**
 * Compares `tf.variableGrads(loss, variables)` with central finite differences, element by element
 * (every `stride`-th), by writing value ± epsilon into each variable and re-evaluating `loss`.
 * Throws, naming the variable (name and shape), the element and both values, at the first
 * disagreement. Every variable is restored bit-exactly (also when it throws) and every tensor
 * created here is disposed. `loss` must return a scalar and may be called many times.
 */
export async function checkVariableGradients(
  loss: () => tf.Scalar,
  variables: readonly tf.Variable[],
  options: CheckVariableGradientsOptions = {},
): Promise<VariableGradientCheckResult> {
  const epsilon = options.epsilon ?? 1e-2;
  const tolerance = options.tolerance ?? 1e-2;
  const stride = options.stride ?? 1;
  if (!(epsilon > 0)) throw new Error(`checkVariableGradients: epsilon must be > 0, got ${epsilon}`);
  if (!(tolerance >= 0)) throw new Error(`checkVariableGradients: tolerance must be >= 0, got ${tolerance}`);
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`checkVariableGradients: stride must be a positive integer, got ${stride}`);
  }
  if (variables.length === 0) throw new Error('checkVariableGradients: no variables to check');
  const describe = (variable: tf.Variable) => `variable ${variable.name} of shape [${variable.shape}]`;
  const names = new Set<string>();
  for (const variable of variables) {
    if (variable.dtype !== 'float32') {
      throw new Error(
        `checkVariableGradients: ${describe(variable)} has dtype ${variable.dtype}, not float32`,
      );
    }
    if (names.has(variable.name))
      throw new Error(`checkVariableGradients: ${describe(variable)} is listed twice`);
    names.add(variable.name);
  }

  const evaluate = async () => {
    const value = tf.tidy(loss);
    try {
      if (value.size !== 1)
        throw new Error(`checkVariableGradients: loss must return a scalar, got shape [${value.shape}]`);
      return (await value.data())[0];
    } finally {
      value.dispose();
    }
  };

  // Checked first: tf.variableGrads leaks tensors when it rejects a non-scalar loss.
  const probe = tf.tidy(loss);
  const probeShape = probe.shape;
  probe.dispose();
  if (probeShape.length !== 0) {
    throw new Error(`checkVariableGradients: loss must return a scalar, got shape [${probeShape}]`);
  }
  const { value, grads } = tf.variableGrads(loss, [...variables]);
  value.dispose();
  let checked = 0;
  let maxError = 0;
  try {
    for (const variable of variables) {
      const gradient = grads[variable.name];
      if (gradient == null) {
        throw new Error(
          `checkVariableGradients: no analytic gradient for ${describe(variable)} (not trainable, or the loss does not use it)`,
        );
      }
      const analytic = await gradient.data();
      const values = Float32Array.from(await variable.data());
      const original = tf.clone(variable);
      try {
        const at = async (i: number, perturbedValue: number) => {
          const perturbed = values.slice();
          perturbed[i] = perturbedValue;
          const next = tf.tensor(perturbed, variable.shape, 'float32');
          variable.assign(next);
          next.dispose();
          return evaluate();
        };
        for (let i = 0; i < values.length; i += stride) {
          // The step actually taken in float32 (x ± epsilon rounded), not the nominal 2·epsilon.
          const plus = Math.fround(values[i] + epsilon);
          const minus = Math.fround(values[i] - epsilon);
          const numeric = ((await at(i, plus)) - (await at(i, minus))) / (plus - minus);
          const difference = Math.abs(numeric - analytic[i]);
          const scale = Math.max(1, Math.abs(numeric));
          checked++;
          if (!(difference <= tolerance * scale)) {
            throw new Error(
              `gradient mismatch for ${describe(variable)} at element ${i}: analytic ${analytic[i]}, numeric ${numeric} ` +
                `(|difference| ${difference} > ${tolerance} · max(1, |numeric|), epsilon ${epsilon})`,
            );
          }
          maxError = Math.max(maxError, difference / scale);
        }
      } finally {
        variable.assign(original);
        original.dispose();
      }
    }
  } finally {
    tf.dispose(Object.values(grads));
  }
  return { checked, maxError };
}
