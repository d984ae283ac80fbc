// fusedAdam / fusedAdamW against tf.train.adam on identical copies of the same variables, through
// optimizer.minimize and through model.fit, on every backend: equal to ≤ 1e-6 after N steps.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { PeftConfigError } from './errors';
import { minimizeReleasingEarly } from './eager-release-gradients';
import { releaseEarly } from './release-early';
import { embeddingLookup } from './embedding-lookup';
import { FusedAdamOptimizer, fusedAdam, fusedAdamW } from './fused-adam';
import { withSparseEmbeddingGradients } from './sparse-embedding-gradients';

const SHAPES = [[3, 4], [4], [2, 2, 3], [1]];

function makeVariables(prefix: string): tf.Variable[] {
  return SHAPES.map((shape, i) =>
    tf.tidy(() =>
      tf.variable(
        tf.sin(tf.reshape(tf.range(i, i + tf.util.sizeFromShape(shape), 1, 'float32'), shape)),
        true,
        `${prefix}_${i}`,
      ),
    ),
  );
}

/** A loss with different curvature per variable, so the moments differ from variable to variable. */
function loss(variables: tf.Variable[], step: number): tf.Scalar {
  return tf.tidy(
    () =>
      tf.addN(
        variables.map((v, i) =>
          tf.sum(tf.mul(tf.square(tf.sub(v, 0.3 * (i + 1))), tf.add(tf.abs(v), step + i + 1))),
        ),
      ) as tf.Scalar,
  );
}

async function expectAllClose(actual: tf.Tensor[], expected: tf.Tensor[]): Promise<void> {
  for (let i = 0; i < actual.length; i++) await expectTensorsClose(actual[i], expected[i], 1e-6);
}

describeEachBackend('fusedAdam: one update over all variables, equal to tf.train.adam', () => {
  it('minimize: 8 steps equal tf.train.adam (≤ 1e-6), including steps where one variable gets no gradient', async () => {
    const ours = makeVariables('fused');
    const theirs = makeVariables('stock');
    const fused = fusedAdam(0.05);
    const stock = tf.train.adam(0.05);
    for (let step = 0; step < 8; step++) {
      // Steps 3 and 4 train only the first three variables: the moments are re-laid out by name.
      const pick = (vs: tf.Variable[]) => (step === 3 || step === 4 ? vs.slice(0, 3) : vs);
      fused.minimize(() => loss(pick(ours), step), true, pick(ours))?.dispose();
      stock.minimize(() => loss(pick(theirs), step), true, pick(theirs))?.dispose();
    }
    expect(fused.iterations).toBe(8);
    await expectAllClose(ours, theirs);
    fused.dispose();
    stock.dispose();
    tf.dispose([...ours, ...theirs]);
  });

  it('fusedAdamW: decoupled weight decay — each step scales the variables by (1 − lr·wd) before the Adam step', async () => {
    const ours = makeVariables('adamw');
    const theirs = makeVariables('reference');
    const lr = 0.02;
    const wd = 0.1;
    const fused = fusedAdamW(lr, wd);
    const stock = tf.train.adam(lr);
    for (let step = 0; step < 6; step++) {
      fused.minimize(() => loss(ours, step), true, ours)?.dispose();
      const { value, grads } = tf.variableGrads(() => loss(theirs, step), theirs);
      for (const v of theirs) tf.tidy(() => v.assign(tf.mul(v, 1 - lr * wd)));
      stock.applyGradients(grads as Parameters<typeof stock.applyGradients>[0]);
      tf.dispose([value, ...Object.values(grads)]);
    }
    await expectAllClose(ours, theirs);
    fused.dispose();
    stock.dispose();
    tf.dispose([...ours, ...theirs]);
  });

  it('model.fit with fusedAdam gives the weights model.fit with tf.train.adam gives (≤ 1e-6)', async () => {
    const build = (seed: number) => {
      const model = tfl.sequential({
        layers: [
          tfl.layers.dense({
            units: 5,
            activation: 'relu',
            inputShape: [3],
            kernelInitializer: tfl.initializers.glorotUniform({ seed }),
          }),
          tfl.layers.dense({
            units: 2,
            kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }),
          }),
        ],
      });
      return model;
    };
    const a = build(1);
    const b = build(1);
    a.compile({ optimizer: fusedAdam(0.01), loss: 'meanSquaredError' });
    b.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const xs = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 24, 1, 'float32'), [8, 3])));
    const ys = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 16, 1, 'float32'), [8, 2])));
    await a.fit(xs, ys, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
    await b.fit(xs, ys, { epochs: 3, batchSize: 4, shuffle: false, verbose: 0 });
    await expectAllClose(a.getWeights(), b.getWeights());
    a.optimizer.dispose();
    b.optimizer.dispose();
    tf.dispose([xs, ys]);
    a.dispose();
    b.dispose();
  });

  it('getWeights → setWeights carries the moments to a new optimizer, as tf.train.adam does (≤ 1e-6)', async () => {
    // Both restore β^t with pow (not the running product), so both are compared through a restore.
    const ours = makeVariables('saved');
    const theirs = makeVariables('stock_saved');
    const first = fusedAdam(0.05);
    const stockFirst = tf.train.adam(0.05);
    for (let step = 0; step < 3; step++) {
      first.minimize(() => loss(ours, step), true, ours)?.dispose();
      stockFirst.minimize(() => loss(theirs, step), true, theirs)?.dispose();
    }
    const weights = await first.getWeights();
    expect(weights.map((w) => w.name)).toEqual([
      'iter',
      ...ours.map((v) => `${v.name}/m`),
      ...ours.map((v) => `${v.name}/v`),
    ]);
    const stockWeights = await stockFirst.getWeights();
    const second = fusedAdam(0.05);
    const stockSecond = tf.train.adam(0.05);
    await second.setWeights(weights);
    await stockSecond.setWeights(stockWeights);
    tf.dispose([weights[0].tensor, stockWeights[0].tensor]); // the iteration scalars are fresh tensors
    first.dispose();
    stockFirst.dispose();
    for (let step = 3; step < 6; step++) {
      second.minimize(() => loss(ours, step), true, ours)?.dispose();
      stockSecond.minimize(() => loss(theirs, step), true, theirs)?.dispose();
    }
    await expectAllClose(ours, theirs);
    second.dispose();
    stockSecond.dispose();
    tf.dispose([...ours, ...theirs]);
  });

  it('serialises as FusedAdam and refuses bad settings', () => {
    const optimizer = fusedAdamW(0.01, 0.05);
    expect(FusedAdamOptimizer.className).toBe('FusedAdam');
    expect(optimizer.getConfig()).toMatchObject({
      learningRate: 0.01,
      weightDecay: 0.05,
      beta1: 0.9,
      beta2: 0.999,
    });
    optimizer.dispose();
    expect(() => fusedAdam(-1)).toThrow(PeftConfigError);
    expect(() => fusedAdam(0.01, 1)).toThrow(PeftConfigError);
  });
});

// ---------------------------------------------------------------------------------------------
// sparseEmbeddings: LazyAdam on tables looked up with embeddingLookup.

const VOCAB = 7;
const DIM = 3;
const EPSILON = 1e-7;

/** The table's initial values, plain. */
function initialTable(): number[][] {
  return Array.from({ length: VOCAB }, (_, r) =>
    Array.from({ length: DIM }, (_, j) => Math.sin(1 + r * DIM + j)),
  );
}

/** Per step: ids [2, 4] (repeats on purpose) and loss weights [2, 4, 3]. Rows 2 and 6 are never looked up. */
const STEPS = [
  [1, 3, 1, 1, 3, 5, 0, 1],
  [0, 4, 4, 4, 0, 4, 4, 0],
  [5, 1, 5, 3, 3, 3, 1, 5],
  [4, 4, 4, 4, 4, 4, 4, 4],
];
const ALL_ROWS_STEPS = [
  [0, 1, 2, 3, 4, 5, 6, 3],
  [6, 5, 4, 3, 2, 1, 0, 0],
  [2, 0, 1, 4, 3, 6, 5, 5],
];
const lossWeight = (step: number, p: number, j: number) => Math.cos(step * 5 + p * 3 + j) * 0.7;

/** loss = Σ_p Σ_j w_pj·x_pj + x_pj², x = table[ids]. */
function embeddingLoss(table: tf.Variable, ids: number[], step: number): tf.Scalar {
  return tf.tidy(() => {
    const x = embeddingLookup(table as unknown as tf.Tensor2D, tf.tensor2d(ids, [2, 4], 'int32'));
    const w = tf.tensor3d(
      ids.flatMap((_, p) => Array.from({ length: DIM }, (_, j) => lossWeight(step, p, j))),
      [2, 4, DIM],
    );
    return tf.sum(tf.add(tf.mul(w, x), tf.square(x))) as tf.Scalar;
  });
}

interface LazyAdamReference {
  table: number[][];
  m: number[][];
  v: number[][];
}

/**
 * LazyAdam written out plainly (float64): the gradient of embeddingLoss per looked-up row, then
 * the Adam update of those rows only, with bias correction from the global step t. `dense` updates
 * every row (the gradient of rows not looked up is zero), as Adam does.
 */
function referenceStep(
  state: LazyAdamReference,
  ids: number[],
  step: number,
  t: number,
  options: { lr: number; weightDecay?: number; dense?: boolean },
): void {
  const [beta1, beta2] = [0.9, 0.999];
  const gradient = new Map<number, number[]>();
  ids.forEach((id, p) => {
    const row = gradient.get(id) ?? new Array<number>(DIM).fill(0);
    for (let j = 0; j < DIM; j++) row[j]! += lossWeight(step, p, j) + 2 * state.table[id]![j]!;
    gradient.set(id, row);
  });
  const rows = options.dense ? Array.from({ length: VOCAB }, (_, r) => r) : [...gradient.keys()];
  for (const r of rows) {
    const g = gradient.get(r) ?? new Array<number>(DIM).fill(0);
    for (let j = 0; j < DIM; j++) {
      state.m[r]![j] = beta1 * state.m[r]![j]! + (1 - beta1) * g[j]!;
      state.v[r]![j] = beta2 * state.v[r]![j]! + (1 - beta2) * g[j]! * g[j]!;
      const mHat = state.m[r]![j]! / (1 - beta1 ** t);
      const vHat = state.v[r]![j]! / (1 - beta2 ** t);
      const decayed = state.table[r]![j]! * (1 - options.lr * (options.weightDecay ?? 0));
      state.table[r]![j] = decayed - (options.lr * mHat) / (Math.sqrt(vHat) + EPSILON);
    }
  }
}

function newReference(): LazyAdamReference {
  const zeros = () => Array.from({ length: VOCAB }, () => new Array<number>(DIM).fill(0));
  return { table: initialTable(), m: zeros(), v: zeros() };
}

function tableVariable(name: string): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor2d(initialTable()), true, name));
}

/** The optimizer's moments of one variable, by getWeights (tf.train.adam's names). */
async function momentsOf(
  optimizer: FusedAdamOptimizer,
  name: string,
): Promise<{ m: tf.Tensor; v: tf.Tensor }> {
  const weights = await optimizer.getWeights();
  weights[0]!.tensor.dispose();
  return {
    m: weights.find((w) => w.name === `${name}/m`)!.tensor,
    v: weights.find((w) => w.name === `${name}/v`)!.tensor,
  };
}

describeEachBackend('fusedAdam sparseEmbeddings: lazy updates of looked-up rows', () => {
  const sparseAdam = (lr: number, weightDecay = 0) =>
    new FusedAdamOptimizer({ learningRate: lr, epsilon: EPSILON, weightDecay, sparseEmbeddings: true });

  for (const [weightDecay, releasing] of [
    [0, false],
    [0.1, false],
    [0.1, true],
  ] as const) {
    it(`weightDecay ${weightDecay}${releasing ? ', through releaseEarly(optimizer)' : ''}: looked-up rows equal a plain LazyAdam over 4 steps with repeated ids; other rows and their moments stay bit-identical`, async () => {
      const lr = 0.05;
      const table = tableVariable(`lazy_${weightDecay}_${releasing}`);
      const optimizer = releasing ? releaseEarly(sparseAdam(lr, weightDecay)) : sparseAdam(lr, weightDecay);
      const reference = newReference();
      let tensorsAfterFirstStep = 0;
      for (let step = 0; step < STEPS.length; step++) {
        optimizer.minimize(() => embeddingLoss(table, STEPS[step]!, step), true)?.dispose();
        referenceStep(reference, STEPS[step]!, step, step + 1, { lr, weightDecay });
        if (step === 0) tensorsAfterFirstStep = tf.memory().numTensors;
      }
      expect(tf.memory().numTensors).toBe(tensorsAfterFirstStep);
      await expectTensorsClose(table, reference.table, 1e-5);
      const { m, v } = await momentsOf(optimizer, table.name);
      await expectTensorsClose(m, reference.m, 1e-5);
      await expectTensorsClose(v, reference.v, 1e-5);
      // Rows 2 and 6 were never looked up: values exactly as initialised, moments exactly zero.
      const [values, mValues, vValues] = await Promise.all([table.data(), m.data(), v.data()]);
      const initial = new Float32Array(initialTable().flat());
      for (const row of [2, 6]) {
        for (let j = 0; j < DIM; j++) {
          expect(values[row * DIM + j]).toBe(initial[row * DIM + j]);
          expect(mValues[row * DIM + j]).toBe(0);
          expect(vValues[row * DIM + j]).toBe(0);
        }
      }
      optimizer.dispose();
      table.dispose();
    });
  }

  it('a row not looked up keeps its moments and value bit-identical across steps (no decay)', async () => {
    const table = tableVariable('no_decay');
    const optimizer = sparseAdam(0.05);
    optimizer.minimize(() => embeddingLoss(table, STEPS[0]!, 0), true)?.dispose(); // touches 0, 1, 3, 5
    const before = await momentsOf(optimizer, table.name);
    const [m0, v0, x0] = await Promise.all([before.m.data(), before.v.data(), table.data()]);
    optimizer.minimize(() => embeddingLoss(table, STEPS[1]!, 1), true)?.dispose(); // touches 0, 4
    const after = await momentsOf(optimizer, table.name);
    const [m1, v1, x1] = await Promise.all([after.m.data(), after.v.data(), table.data()]);
    for (const row of [1, 3, 5]) {
      for (let j = 0; j < DIM; j++) {
        const k = row * DIM + j;
        expect([m1[k], v1[k], x1[k]]).toEqual([m0[k], v0[k], x0[k]]);
      }
    }
    expect(m1[0]).not.toBe(m0[0]);
    optimizer.dispose();
    table.dispose();
  });

  it('equals dense fusedAdam (≤ 1e-6) when every row is looked up in every step', async () => {
    const sparseTable = tableVariable('every_row_sparse');
    const denseTable = tableVariable('every_row_dense');
    const sparse = sparseAdam(0.05, 0.1);
    const dense = new FusedAdamOptimizer({ learningRate: 0.05, epsilon: EPSILON, weightDecay: 0.1 });
    for (let step = 0; step < ALL_ROWS_STEPS.length; step++) {
      sparse.minimize(() => embeddingLoss(sparseTable, ALL_ROWS_STEPS[step]!, step), true)?.dispose();
      dense.minimize(() => embeddingLoss(denseTable, ALL_ROWS_STEPS[step]!, step), true)?.dispose();
    }
    await expectTensorsClose(sparseTable, denseTable, 1e-6);
    const sparseMoments = await momentsOf(sparse, sparseTable.name);
    const denseMoments = await momentsOf(dense, denseTable.name);
    await expectTensorsClose(sparseMoments.m, denseMoments.m, 1e-6);
    await expectTensorsClose(sparseMoments.v, denseMoments.v, 1e-6);
    tf.dispose([sparseTable, denseTable]);
    sparse.dispose();
    dense.dispose();
  });

  it('other variables in the same step get the dense update, equal to tf.train.adam (≤ 1e-6)', async () => {
    const table = tableVariable('with_bias_table');
    const bias = tf.tidy(() => tf.variable(tf.tensor1d([0.3, -0.2, 0.9]), true, 'with_bias_bias'));
    const stockBias = tf.tidy(() => tf.variable(tf.tensor1d([0.3, -0.2, 0.9]), true, 'with_bias_stock'));
    const biasLoss = (b: tf.Variable, step: number) =>
      tf.tidy(() => tf.sum(tf.mul(tf.square(tf.sub(b, 0.5)), step + 1)) as tf.Scalar);
    const optimizer = sparseAdam(0.05);
    const stock = tf.train.adam(0.05, 0.9, 0.999, EPSILON);
    const reference = newReference();
    for (let step = 0; step < 3; step++) {
      optimizer
        .minimize(
          () => tf.tidy(() => tf.add(embeddingLoss(table, STEPS[step]!, step), biasLoss(bias, step))),
          true,
        )
        ?.dispose();
      stock.minimize(() => biasLoss(stockBias, step), true, [stockBias])?.dispose();
      referenceStep(reference, STEPS[step]!, step, step + 1, { lr: 0.05 });
    }
    await expectTensorsClose(bias, stockBias, 1e-6);
    await expectTensorsClose(table, reference.table, 1e-5);
    optimizer.dispose();
    stock.dispose();
    tf.dispose([table, bias, stockBias]);
  });

  it('dense where the gradient is not embeddingLookup’s alone: a tied use of the table, or applyGradients outside a scope', async () => {
    // A table also read by a matMul (an LM head tied to it): the gradient is a sum, updated densely.
    const tiedLoss = (table: tf.Variable, step: number) =>
      tf.tidy(
        () =>
          tf.add(
            embeddingLoss(table, STEPS[step]!, step),
            tf.sum(tf.matMul(tf.ones([1, DIM]), table as unknown as tf.Tensor2D, false, true)),
          ) as tf.Scalar,
      );
    const sparseTable = tableVariable('tied_sparse');
    const denseTable = tableVariable('tied_dense');
    const sparse = sparseAdam(0.05);
    const dense = new FusedAdamOptimizer({ learningRate: 0.05, epsilon: EPSILON });
    for (let step = 0; step < 3; step++) {
      sparse.minimize(() => tiedLoss(sparseTable, step), true)?.dispose();
      dense.minimize(() => tiedLoss(denseTable, step), true)?.dispose();
    }
    await expectTensorsClose(sparseTable, denseTable, 1e-6);

    // Gradients computed and applied without a scope carry no rows: a dense step, which moves
    // (and decays the moments of) rows the previous sparse step left alone.
    const table = tableVariable('mixed');
    const optimizer = sparseAdam(0.05);
    const reference = newReference();
    for (let step = 0; step < 3; step++) {
      if (step === 1) {
        const { value, grads } = tf.variableGrads(() => embeddingLoss(table, STEPS[step]!, step), [table]);
        optimizer.applyGradients(grads);
        tf.dispose([value, ...Object.values(grads)]);
      } else {
        optimizer.minimize(() => embeddingLoss(table, STEPS[step]!, step), true)?.dispose();
      }
      referenceStep(reference, STEPS[step]!, step, step + 1, { lr: 0.05, dense: step === 1 });
    }
    await expectTensorsClose(table, reference.table, 1e-5);
    const { m } = await momentsOf(optimizer, table.name);
    await expectTensorsClose(m, reference.m, 1e-5);
    tf.dispose([sparseTable, denseTable, table]);
    sparse.dispose();
    dense.dispose();
    optimizer.dispose();
  });

  it('variableGrads + applyGradients, and minimizeReleasingEarly, inside withSparseEmbeddingGradients are sparse too', async () => {
    const table = tableVariable('explicit_scope');
    const optimizer = sparseAdam(0.05);
    const reference = newReference();
    for (let step = 0; step < 2; step++) {
      withSparseEmbeddingGradients(() => {
        const { value, grads } = tf.variableGrads(() => embeddingLoss(table, STEPS[step]!, step), [table]);
        optimizer.applyGradients(grads);
        tf.dispose([value, ...Object.values(grads)]);
      });
      referenceStep(reference, STEPS[step]!, step, step + 1, { lr: 0.05 });
    }
    // And through minimizeReleasingEarly (its own backward pass hands on the lookup's gradient too).
    for (let step = 2; step < 4; step++) {
      withSparseEmbeddingGradients(() =>
        minimizeReleasingEarly(optimizer, () => embeddingLoss(table, STEPS[step]!, step), [table]).dispose(),
      );
      referenceStep(reference, STEPS[step]!, step, step + 1, { lr: 0.05 });
    }
    await expectTensorsClose(table, reference.table, 1e-5);
    optimizer.dispose();
    table.dispose();
  });

  it('serialises sparseEmbeddings, keeps the default dense, refuses a non-boolean', () => {
    const optimizer = sparseAdam(0.01);
    expect(optimizer.getConfig()).toMatchObject({ sparseEmbeddings: true });
    const plain = fusedAdam();
    expect(plain.sparseEmbeddings).toBe(false);
    expect(() => new FusedAdamOptimizer({ sparseEmbeddings: 'yes' as unknown as boolean })).toThrow(
      PeftConfigError,
    );
    optimizer.dispose();
    plain.dispose();
  });
});
