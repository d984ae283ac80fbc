import * as tf from '@tensorflow/tfjs-core';
import { PeftConfigError, PeftError } from './errors';
import { gatherRows } from './gather-rows';
import { embeddingGradientRows, withSparseEmbeddingGradients } from './sparse-embedding-gradients';

export interface FusedAdamOptions {
  learningRate?: number;
  beta1?: number;
  beta2?: number;
  /** Default: the backend's epsilon, as tf.train.adam takes it. */
  epsilon?: number | null;
  /**
   * Decoupled weight decay (AdamW, Loshchilov & Hutter): every step multiplies each variable by
   * (1 − learningRate · weightDecay) before the Adam update, as PyTorch's AdamW does. 0 = Adam.
   */
  weightDecay?: number;
  /**
   * Lazy (sparse) updates for embedding tables, as TensorFlow Addons' LazyAdam and PyTorch's
   * SparseAdam: a table whose gradient came from `embeddingLookup` alone gets its moments and values
   * updated in the looked-up rows only (gather, the same Adam arithmetic on those rows with the
   * global step's bias correction, scatter back); every other row, and its moments, stays exactly as
   * it was. Differs from Adam: moments of rows not looked up do not decay, and AdamW's weight decay
   * applies to the looked-up rows only. Every other variable (and a table also used by another op, or
   * whose gradient was transformed before `applyGradients`) is updated densely, unchanged. Takes
   * effect through `minimize` (so `model.fit`), or around your own `applyGradients` inside
   * `withSparseEmbeddingGradients`. Default false.
   */
  sparseEmbeddings?: boolean;
}

/** tfjs-core's NamedTensor (not exported from its index). */
interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

interface Layout {
  names: string[];
  shapes: number[][];
  sizes: number[];
}

function flatten(tensors: tf.Tensor[]): tf.Tensor1D {
  return tf.tidy(() => {
    const flat = tensors.map((t) => tf.reshape(t, [-1]));
    return (flat.length === 1 ? flat[0] : tf.concat(flat)) as tf.Tensor1D;
  });
}

/**
 * `tf.tensorScatterUpdate(tensor, rows, updates)` into a new buffer on every backend. tfjs 4.22's cpu
 * kernel writes the updates into its input's own buffer, which every clone of the input (a variable
 * shares it with the tensor it was made from) and every array `data()` returned share; on cpu the
 * input is copied first (×1, exact). The wasm, webgpu and tensorflow kernels write a new output;
 * webgl's adds up repeated rows, handled below.
 */
function scatterRows(tensor: tf.Tensor, rows: tf.Tensor, updates: tf.Tensor): tf.Tensor {
  if (tf.getBackend() === 'webgl') {
    // tfjs 4.22's webgl TensorScatterUpdate sums the updates of a repeated row instead of writing
    // one (checked in Chromium: rows [4, 1, 4] of 40 give 80). Write each row's change instead,
    // divided by how often the row repeats, with ScatterNd, whose contract is to sum: rows not
    // looked up get + 0 (unchanged); a looked-up row gets its new value to float rounding.
    const counts = tf.scatterND(rows, tf.ones([rows.shape[0]!]), [tensor.shape[0]!]);
    const change = tf.div(
      tf.sub(updates, tf.gatherND(tensor, rows)),
      tf.expandDims(tf.gatherND(counts, rows), 1),
    );
    return tf.add(tensor, tf.scatterND(rows, change, tensor.shape));
  }
  const input = tf.getBackend() === 'cpu' ? tf.mul(tensor, 1) : tensor;
  return tf.tensorScatterUpdate(input, rows, updates);
}

function requireFinite(name: string, value: number, min: number, maxExclusive = Infinity): number {
  if (!(Number.isFinite(value) && value >= min && value < maxExclusive)) {
    throw new PeftConfigError(name, value, `expected a number in [${min}, ${maxExclusive})`);
  }
  return value;
}

/**
 * Adam (and AdamW) over all trainable variables at once: the gradients are concatenated into one
 * vector, and the moment update, bias correction and step run once on it (about 20 kernels per step
 * plus a reshape per variable) instead of about 14 kernels per variable (tf.train.adam). The
 * arithmetic is tf.train.adam's, element by element, in the same order, so the results are equal
 * (bit-identical where the backend's elementwise kernels are). The moments are kept as two flat
 * vectors; a change in the set of variables updated re-lays them out by variable name. Works with
 * `model.compile({ optimizer })` / `model.fit` and `optimizer.minimize`. Temporaries are released
 * as soon as they are consumed, so a step holds at most a few copies of the concatenated vector.
 */
export class FusedAdamOptimizer extends tf.Optimizer {
  static get className(): string {
    return 'FusedAdam';
  }

  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  readonly weightDecay: number;
  readonly sparseEmbeddings: boolean;
  private readonly accBeta1: tf.Variable;
  private readonly accBeta2: tf.Variable;
  private layout: Layout | null = null;
  private firstMoment: tf.Variable | null = null;
  private secondMoment: tf.Variable | null = null;
  /**
   * Per-variable moments kept outside the flat layout: from setWeights or a layout change (laid out
   * at the next dense step), and the moments of tables updated sparsely (updated here, row by row).
   */
  private pending = new Map<string, { m: tf.Tensor; v: tf.Tensor }>();

  constructor(options: FusedAdamOptions = {}) {
    super();
    this.learningRate = requireFinite('learningRate', options.learningRate ?? 0.001, 0);
    this.beta1 = requireFinite('beta1', options.beta1 ?? 0.9, 0, 1);
    this.beta2 = requireFinite('beta2', options.beta2 ?? 0.999, 0, 1);
    this.epsilon = requireFinite('epsilon', options.epsilon ?? tf.backend().epsilon(), 0);
    this.weightDecay = requireFinite('weightDecay', options.weightDecay ?? 0, 0);
    const sparse = options.sparseEmbeddings ?? false;
    if (typeof sparse !== 'boolean')
      throw new PeftConfigError('sparseEmbeddings', sparse, 'expected a boolean');
    this.sparseEmbeddings = sparse;
    // Variables outlive tidy; the scalars they are made from do not.
    [this.accBeta1, this.accBeta2] = tf.tidy(() => [
      tf.variable(tf.scalar(this.beta1), false),
      tf.variable(tf.scalar(this.beta2), false),
    ]);
  }

  /**
   * tf.Optimizer's minimize; with `sparseEmbeddings`, inside a `withSparseEmbeddingGradients` scope
   * so the step's embedding gradients carry their looked-up rows (released when the step ends).
   */
  override minimize(f: () => tf.Scalar, returnCost = false, varList?: tf.Variable[]): tf.Scalar | null {
    if (!this.sparseEmbeddings) return super.minimize(f, returnCost, varList);
    return withSparseEmbeddingGradients(() => super.minimize(f, returnCost, varList));
  }

  applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const pairs: [string, tf.Tensor][] = Array.isArray(variableGradients)
      ? variableGradients.map(({ name, tensor }) => [name, tensor])
      : Object.entries(variableGradients);
    const present = pairs.filter(([, gradient]) => gradient != null);
    if (present.length > 0) this.step(present);
    tf.tidy(() => {
      this.accBeta1.assign(tf.mul(this.accBeta1, this.beta1));
      this.accBeta2.assign(tf.mul(this.accBeta2, this.beta2));
    });
    this.incrementIterations();
  }

  private step(allPairs: [string, tf.Tensor][]): void {
    const registered = tf.engine().registeredVariables;
    const allVariables = allPairs.map(([name]) => {
      const variable = registered[name];
      if (variable === undefined) throw new PeftError(`fusedAdam: no variable named "${name}" is registered`);
      return variable;
    });
    const sparse: { variable: tf.Variable; gradient: tf.Tensor; ids: tf.Tensor1D }[] = [];
    const pairs: [string, tf.Tensor][] = [];
    const variables: tf.Variable[] = [];
    allPairs.forEach((pair, i) => {
      const variable = allVariables[i]!;
      const ids = this.sparseEmbeddings ? embeddingGradientRows(pair[1]) : undefined;
      if (ids !== undefined && tf.util.arraysEqual(variable.shape, pair[1].shape)) {
        sparse.push({ variable, gradient: pair[1], ids });
      } else {
        pairs.push(pair);
        variables.push(variable);
      }
    });
    // A table updated sparsely keeps its moments by name, outside the flat layout.
    if (this.layout !== null && sparse.some(({ variable }) => this.layout!.names.includes(variable.name))) {
      this.unpack();
    }
    for (const { variable, gradient, ids } of sparse) this.sparseStep(variable, gradient, ids);
    if (pairs.length > 0) this.denseStep(pairs, variables);
  }

  /**
   * The Adam (AdamW) update of fusedAdam, element by element the same arithmetic, on the rows `ids`
   * of one table only: gather the rows of the gradient, moments and values, update them, scatter
   * them back. Repeated ids compute identical rows, so the scatter writes the same values twice.
   */
  private sparseStep(variable: tf.Variable, gradient: tf.Tensor, ids: tf.Tensor1D): void {
    if (ids.size === 0) return; // looked up with no ids: no row to update
    const previous = this.pending.get(variable.name);
    const [m, v] = previous ? [previous.m, previous.v] : [tf.zeros(variable.shape), tf.zeros(variable.shape)];
    const [nextM, nextV, nextValue] = tf.tidy(() => {
      const rows = tf.reshape(ids, [-1, 1]);
      const g = gatherRows(gradient, ids);
      const mRows = tf.add(tf.mul(gatherRows(m, ids), this.beta1), tf.mul(g, 1 - this.beta1));
      const vRows = tf.add(tf.mul(gatherRows(v, ids), this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
      const correctedM = tf.div(mRows, tf.sub(1, this.accBeta1));
      const correctedV = tf.div(vRows, tf.sub(1, this.accBeta2));
      const update = tf.mul(
        tf.div(correctedM, tf.add(tf.sqrt(correctedV), this.epsilon)),
        -this.learningRate,
      );
      let values = gatherRows(variable, ids);
      if (this.weightDecay !== 0) values = tf.mul(values, 1 - this.learningRate * this.weightDecay);
      return [
        scatterRows(m, rows, mRows),
        scatterRows(v, rows, vRows),
        scatterRows(variable, rows, tf.add(update, values)),
      ];
    });
    tf.dispose([m, v]);
    // Kept: a step may run inside the caller's tidy (model.fit's), which must not take the moments.
    this.pending.set(variable.name, { m: tf.keep(nextM!), v: tf.keep(nextV!) });
    variable.assign(nextValue!);
    nextValue!.dispose();
  }

  private denseStep(pairs: [string, tf.Tensor][], variables: tf.Variable[]): void {
    this.ensureLayout(variables);
    const layout = this.layout!;
    const m = this.firstMoment!;
    const v = this.secondMoment!;
    const gradient = flatten(pairs.map(([, g]) => g));
    const nextM = tf.tidy(() => tf.add(tf.mul(m, this.beta1), tf.mul(gradient, 1 - this.beta1)));
    const nextV = tf.tidy(() => tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(gradient), 1 - this.beta2)));
    gradient.dispose();
    m.assign(nextM);
    v.assign(nextV);
    const update = tf.tidy(() => {
      const correctedM = tf.div(nextM, tf.sub(1, this.accBeta1));
      const correctedV = tf.div(nextV, tf.sub(1, this.accBeta2));
      return tf.mul(tf.div(correctedM, tf.add(tf.sqrt(correctedV), this.epsilon)), -this.learningRate);
    });
    tf.dispose([nextM, nextV]);
    const next = tf.tidy(() => {
      let values = flatten(variables);
      if (this.weightDecay !== 0) values = tf.mul(values, 1 - this.learningRate * this.weightDecay);
      return tf.add(update, values);
    });
    update.dispose();
    const pieces = variables.length === 1 ? [next] : tf.split(next, layout.sizes);
    variables.forEach((variable, i) => {
      const value = tf.reshape(pieces[i], layout.shapes[i]);
      variable.assign(value);
      value.dispose();
    });
    tf.dispose([next, ...pieces]);
  }

  /** Lays the moments out for these variables, in this order, keeping each variable's moments by name. */
  private ensureLayout(variables: tf.Variable[]): void {
    const names = variables.map((v) => v.name);
    const same = (a: string[]) => a.length === names.length && a.every((name, i) => name === names[i]);
    if (this.layout !== null && same(this.layout.names)) return;
    this.unpack();
    const zeros = (variable: tf.Variable) => tf.zeros(variable.shape);
    const [m, v] = (['m', 'v'] as const).map((key) =>
      tf.tidy(() =>
        flatten(variables.map((variable) => this.pending.get(variable.name)?.[key] ?? zeros(variable))),
      ),
    );
    // Now in the flat layout; the moments of variables not in it stay pending, by name.
    for (const name of names) {
      const laidOut = this.pending.get(name);
      if (laidOut) tf.dispose([laidOut.m, laidOut.v]);
      this.pending.delete(name);
    }
    this.firstMoment = tf.variable(m, false);
    this.secondMoment = tf.variable(v, false);
    tf.dispose([m, v]);
    this.layout = { names, shapes: variables.map((x) => [...x.shape]), sizes: variables.map((x) => x.size) };
  }

  /** Splits the flat moments back into per-variable tensors (into `pending`) and drops the layout. */
  private unpack(): void {
    if (this.layout === null) return;
    const layout = this.layout;
    const split = (flat: tf.Variable) =>
      tf.tidy(() => {
        const parts = layout.names.length === 1 ? [flat] : tf.split(flat, layout.sizes);
        // Kept: a layout change may happen inside the caller's tidy (model.fit's step).
        return parts.map((part, i) => tf.keep(tf.reshape(part, layout.shapes[i])));
      });
    const ms = split(this.firstMoment!);
    const vs = split(this.secondMoment!);
    layout.names.forEach((name, i) => {
      const old = this.pending.get(name);
      if (old) tf.dispose([old.m, old.v]);
      this.pending.set(name, { m: ms[i], v: vs[i] });
    });
    tf.dispose([this.firstMoment!, this.secondMoment!]);
    this.firstMoment = this.secondMoment = null;
    this.layout = null;
  }

  override dispose(): void {
    tf.dispose([this.accBeta1, this.accBeta2]);
    if (this.firstMoment) tf.dispose([this.firstMoment, this.secondMoment!]);
    for (const { m, v } of this.pending.values()) tf.dispose([m, v]);
    this.pending.clear();
    this.layout = null;
    this.firstMoment = this.secondMoment = null;
  }

  /** tf.train.adam's layout: the iteration count, then every variable's first moments, then its second. */
  override async getWeights(): Promise<NamedTensor[]> {
    this.unpack();
    const entries = [...this.pending.entries()];
    return [
      await this.saveIterations(),
      ...entries.map(([name, { m }]) => ({ name: `${name}/m`, tensor: m })),
      ...entries.map(([name, { v }]) => ({ name: `${name}/v`, tensor: v })),
    ];
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    const values = await this.extractIterations(weightValues);
    tf.tidy(() => {
      this.accBeta1.assign(tf.pow(this.beta1, this.iterations_ + 1));
      this.accBeta2.assign(tf.pow(this.beta2, this.iterations_ + 1));
    });
    this.unpack();
    for (const { m, v } of this.pending.values()) tf.dispose([m, v]);
    this.pending.clear();
    const half = values.length / 2;
    for (let i = 0; i < half; i++) {
      const name = values[i].name.replace(/\/m$/, '');
      this.pending.set(name, { m: tf.clone(values[i].tensor), v: tf.clone(values[half + i].tensor) });
    }
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      learningRate: this.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      epsilon: this.epsilon,
      weightDecay: this.weightDecay,
      sparseEmbeddings: this.sparseEmbeddings,
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    return new (cls as unknown as new (options: FusedAdamOptions) => T)(config as FusedAdamOptions);
  }
}
tf.serialization.registerClass(FusedAdamOptimizer);

/**
 * Adam as one fused update over all trainable variables; a drop-in for `tf.train.adam`. For lazy
 * (sparse) embedding updates use `new FusedAdamOptimizer({ ..., sparseEmbeddings: true })`.
 */
export function fusedAdam(
  learningRate = 0.001,
  beta1 = 0.9,
  beta2 = 0.999,
  epsilon: number | null = null,
): FusedAdamOptimizer {
  return new FusedAdamOptimizer({ learningRate, beta1, beta2, epsilon });
}

/** AdamW (decoupled weight decay, PyTorch's default 0.01) as one fused update. */
export function fusedAdamW(
  learningRate = 0.001,
  weightDecay = 0.01,
  beta1 = 0.9,
  beta2 = 0.999,
  epsilon: number | null = null,
): FusedAdamOptimizer {
  return new FusedAdamOptimizer({ learningRate, beta1, beta2, epsilon, weightDecay });
}
