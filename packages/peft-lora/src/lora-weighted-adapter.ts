import * as tf from '@tensorflow/tfjs-core';
import {
  PeftConfigError,
  UnsupportedLayerError,
  type PeftLayer,
  type WeightedAdapterRequest,
} from '@tfjs-peft/core';
import { LoraConfig } from './lora-config';
import { LoraDense } from './lora-dense';
import { LoraLayer } from './lora-layer';
import { singularValueDecomposition } from './singular-value-decomposition';

export const COMBINATION_TYPES = ['linear', 'cat', 'svd'] as const;
export type CombinationType = (typeof COMBINATION_TYPES)[number];

/**
 * LoRA's add_weighted_adapter, with Hugging Face PEFT's definitions (the new adapter has
 * loraAlpha = r, so its scale is 1). With ΔW_i = s_i·A_i·B_i (tfjs layout) and weights w_i:
 * - 'linear': A = Σ √(w_i·s_i)·A_i, B = Σ √(w_i·s_i)·B_i — equal ranks required, weights ≥ 0;
 *   not Σ w_i·ΔW_i (cross terms), as in PEFT;
 * - 'cat':    A = [w_1·s_1·A_1 | w_2·s_2·A_2 | …], B = [B_1; B_2; …] — exactly Σ w_i·ΔW_i, rank Σ r_i;
 * - 'svd':    the best rank-k approximation (k = svdRank or the largest r) of Σ w_i·ΔW_i.
 *   PEFT 0.21 weights each ΔW by w_i·s_i, scaling twice; we combine the deltas the adapters apply.
 */
export async function addWeightedLoraAdapter(
  layers: readonly PeftLayer[],
  configs: ReadonlyMap<string, LoraConfig>,
  { adapters, weights, newName, combinationType, svdRank }: WeightedAdapterRequest,
): Promise<LoraConfig> {
  if (!(COMBINATION_TYPES as readonly string[]).includes(combinationType)) {
    throw new PeftConfigError(
      'combinationType',
      combinationType,
      `expected one of ${COMBINATION_TYPES.join(', ')}`,
    );
  }
  const sources = adapters.map((name) => configs.get(name)!);
  if (sources.some((c) => c.useDora)) {
    throw new PeftConfigError(
      'adapters',
      adapters,
      'DoRA adapters cannot be combined (their magnitudes do not add)',
    );
  }
  const ranks = sources.map((c) => c.r);
  let rank: number;
  if (combinationType === 'linear') {
    if (new Set(ranks).size !== 1)
      throw new PeftConfigError('adapters', adapters, `'linear' needs equal ranks, got ${ranks.join(', ')}`);
    if (weights.some((w) => w < 0))
      throw new PeftConfigError('weights', weights, "'linear' takes square roots: weights must be ≥ 0");
    rank = ranks[0];
  } else if (combinationType === 'cat') {
    rank = ranks.reduce((a, b) => a + b, 0);
  } else {
    rank = svdRank ?? Math.max(...ranks);
  }
  const unsupported = layers.filter(
    (l) => l instanceof LoraLayer && !(l instanceof LoraDense) && adapters.some((a) => l.hasLoraAdapter(a)),
  );
  if (unsupported.length > 0) {
    const layer = unsupported[0] as LoraLayer;
    throw new UnsupportedLayerError(
      layer.name,
      layer.baseLayer.getClassName(),
      'Dense (for addWeightedAdapter)',
    );
  }
  const loraLayers = layers.filter(
    (l): l is LoraDense => l instanceof LoraDense && adapters.some((a) => l.hasLoraAdapter(a)),
  );
  const created: LoraDense[] = [];
  try {
    for (const layer of loraLayers) {
      layer.addAdapter(newName, {
        r: rank,
        loraAlpha: rank,
        loraDropout: 0,
        useRslora: false,
        initLoraWeights: true,
      });
      created.push(layer);
      const present = adapters
        .map((name, i) => ({ name, weight: weights[i] }))
        .filter((e) => layer.hasLoraAdapter(e.name));
      const [a, b] =
        combinationType === 'svd'
          ? await combineBySvd(layer, present, rank)
          : tf.tidy(() => combine(layer, present, combinationType as CombinationType, rank));
      const [targetA, targetB] = layer.adapterVariables(newName);
      targetA.write(a);
      targetB.write(b);
      tf.dispose([a, b]);
    }
  } catch (error) {
    created.forEach((l) => l.deleteAdapter(newName));
    throw error;
  }
  return new LoraConfig({
    ...configConstructorOptions(sources[0]),
    r: rank,
    loraAlpha: rank,
    targetModules: [...new Set(loraLayers.map((l) => l.baseLayer.name))],
    rankPattern: {},
    alphaPattern: {},
  });
}

function combine(
  layer: LoraDense,
  present: Array<{ name: string; weight: number }>,
  type: CombinationType,
  rank: number,
): [tf.Tensor2D, tf.Tensor2D] {
  const factors = factorsOf(layer, present);
  if (type === 'linear') {
    let a = tf.zeros([layer.inputDim, rank]);
    let b = tf.zeros([rank, layer.units]);
    for (const f of factors) {
      const factor = Math.sqrt(f.weight * f.scale);
      a = tf.add(a, tf.mul(f.a, factor));
      b = tf.add(b, tf.mul(f.b, factor));
    }
    return [a as tf.Tensor2D, b as tf.Tensor2D];
  }
  if (type === 'cat') {
    const a = tf.concat(
      factors.map((f) => tf.mul(f.a, f.weight * f.scale)),
      1,
    );
    const b = tf.concat(
      factors.map((f) => f.b),
      0,
    );
    // Layers that lack some of the adapters get zero blocks, so every layer has the full rank.
    const missing = rank - a.shape[1]!;
    return missing > 0
      ? [
          tf.pad(a, [
            [0, 0],
            [0, missing],
          ]) as tf.Tensor2D,
          tf.pad(b, [
            [0, missing],
            [0, 0],
          ]) as tf.Tensor2D,
        ]
      : [a as tf.Tensor2D, b as tf.Tensor2D];
  }
  throw new PeftConfigError('combinationType', type, 'is combined by combineBySvd');
}

function factorsOf(layer: LoraDense, present: Array<{ name: string; weight: number }>) {
  return present.map(({ name, weight }) => {
    const [a, b] = layer.adapterVariables(name).map((v) => v.read());
    return { a, b, weight, scale: layer.adapterSettings(name).scale };
  });
}

async function combineBySvd(
  layer: LoraDense,
  present: Array<{ name: string; weight: number }>,
  rank: number,
): Promise<[tf.Tensor2D, tf.Tensor2D]> {
  const delta = tf.tidy(() =>
    factorsOf(layer, present).reduce<tf.Tensor>(
      (sum, f) => tf.add(sum, tf.mul(tf.matMul(f.a, f.b), f.weight * f.scale)),
      tf.zeros([layer.inputDim, layer.units]),
    ),
  );
  const values = await delta.data();
  delta.dispose();
  const rows = layer.inputDim;
  const cols = layer.units;
  const { u, s, v, k } = singularValueDecomposition(values, rows, cols);
  const kept = Math.min(rank, k);
  // ΔW ≈ U_k · diag(S_k) · V_kᵀ; like PEFT, the singular values go to B's side.
  const a = new Float32Array(rows * rank);
  const b = new Float32Array(rank * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < kept; j++) a[i * rank + j] = u[i * k + j];
  for (let j = 0; j < kept; j++) for (let c = 0; c < cols; c++) b[j * cols + c] = s[j] * v[c * k + j];
  return [tf.tensor2d(a, [rows, rank]), tf.tensor2d(b, [rank, cols])];
}

function configConstructorOptions(config: LoraConfig) {
  return {
    loraDropout: 0,
    useRslora: false,
    initLoraWeights: true as const,
    excludeModules: config.excludeModules,
    modulesToSave: config.modulesToSave,
    taskType: config.taskType,
  };
}
