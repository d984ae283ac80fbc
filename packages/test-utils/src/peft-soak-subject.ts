// The soak subject shared by the method packages' *-soak tests: two adapters with an Adam optimizer
// each, training steps, and interleaved actions (switch adapter, merge → predict → unmerge or a
// method-specific alternative, disabled-adapter forward, save → load onto a second base → predict →
// unload); on dispose the frozen base must be bit-identical to what it was before setup.
// test-utils does not depend on @tfjs-peft/core: the PEFT model is typed structurally, and building
// it, the adapter store and fromPretrained come from the caller.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend } from './describe-each-backend';
import { expectWeightsBitIdentical, snapshotWeights } from './snapshot-weights';
import { runSoak, soakSteps, type SoakAction, type SoakReport, type SoakSubject } from './soak';

/** The parts of @tfjs-peft/core's PeftModel the soak subject uses. */
export interface SoakPeftModel<Store> {
  readonly model: tfl.LayersModel;
  readonly activeAdapter: string;
  readonly trainableVariables: tf.Variable[];
  setAdapter(names: string | readonly string[]): void;
  withAdapterDisabled<T>(fn: () => T): T;
  mergeAdapter(adapterNames?: readonly string[], options?: { safeMerge?: boolean }): Promise<void>;
  unmergeAdapter(): void;
  saveAdapter(store: Store): Promise<void>;
  unload(): unknown;
}

/** What the method-specific actions get to work with. */
export interface PeftSoakContext<Peft> {
  peft: Peft;
  /** The training inputs, [16, inputUnits]. */
  x: tf.Tensor;
}

export interface PeftSoakSubjectOptions<Peft extends SoakPeftModel<Store>, Store> {
  /**
   * Builds a base model: seed 1 is the one adapted, seed 2 the second base the saved adapter is loaded
   * onto. Default: makeSoakMlp(seed, { randomBiases }).
   */
  makeBase?(seed: number): tfl.LayersModel;
  /** For the default base: biases drawn from N(0, 0.1²) instead of zero. */
  randomBiases?: boolean;
  /** Wraps the base with its 'default' adapter and adds the second adapter, `secondAdapter`. */
  makePeft(base: tfl.LayersModel): Peft;
  /** Name of the second adapter (its save subfolder). */
  secondAdapter: string;
  /** Input and output widths of the base: x is [16, inputUnits], y is [16, outputUnits]. */
  inputUnits: number;
  outputUnits: number;
  /** A fresh adapter store (e.g. `new MemoryAdapterStore()`). */
  createStore(): Store;
  /** Loads a saved adapter onto another base (e.g. `PeftModel.fromPretrained`). */
  fromPretrained(
    base: tfl.LayersModel,
    store: Store,
    options: { subfolder?: string },
  ): Promise<{ readonly model: tfl.LayersModel; unload(): unknown }>;
  /**
   * Replace the 'merge, predict, unmerge' action (every 4 steps), for methods that cannot merge.
   * Runs in its place, between 'switch adapter' and 'disabled-adapter forward'.
   */
  mergeActions?(context: PeftSoakContext<Peft>): SoakAction[];
  /** Further actions, run after 'disabled-adapter forward' and before the save/load action. */
  extraActions?(context: PeftSoakContext<Peft>): SoakAction[];
}

/** Name of the save → load → predict → unload action, which runs every 7 steps. */
export const SOAK_SAVE_LOAD_ACTION = 'save, load on another base, predict, unload';

/**
 * The `setup` for runSoak: builds the base, the PEFT model with two adapters, one Adam optimizer per
 * adapter (Adam keeps its slots by variable position), the data and a second base, and returns the
 * training step, the actions and a dispose that checks the frozen base was never written.
 */
export function peftSoakSubject<Peft extends SoakPeftModel<Store>, Store>(
  options: PeftSoakSubjectOptions<Peft, Store>,
): () => Promise<SoakSubject> {
  const { secondAdapter, inputUnits, outputUnits, randomBiases } = options;
  const makeBase = options.makeBase ?? ((seed: number) => makeSoakMlp(seed, { randomBiases }));
  return async () => {
    const base = makeBase(1);
    const baseSnapshot = await snapshotWeights(base);
    const peft = options.makePeft(base);
    const x = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 16 * inputUnits), [16, inputUnits])));
    const y = tf.tidy(() => tf.cos(tf.reshape(tf.range(0, 16 * outputUnits), [16, outputUnits])));
    const optimizers = new Map([
      ['default', tf.train.adam(0.01)],
      [secondAdapter, tf.train.adam(0.01)],
    ]);
    const otherBase = makeBase(2);
    const store = options.createStore();
    const context = { peft, x };
    const mergeAction: SoakAction = {
      name: 'merge, predict, unmerge',
      every: 4,
      run: async () => {
        await peft.mergeAdapter([peft.activeAdapter], { safeMerge: true });
        tf.dispose(peft.model.predict(x) as tf.Tensor);
        peft.unmergeAdapter();
      },
    };
    return {
      trainStep: () => {
        const optimizer = optimizers.get(peft.activeAdapter)!;
        const cost = optimizer.minimize(
          () =>
            tf.losses.meanSquaredError(y, peft.model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar,
          true,
          peft.trainableVariables,
        );
        cost?.dispose();
      },
      actions: [
        {
          name: 'switch adapter',
          every: 3,
          run: () => peft.setAdapter(peft.activeAdapter === 'default' ? secondAdapter : 'default'),
        },
        ...(options.mergeActions ? options.mergeActions(context) : [mergeAction]),
        {
          name: 'disabled-adapter forward',
          every: 5,
          run: () => peft.withAdapterDisabled(() => tf.dispose(peft.model.predict(x) as tf.Tensor)),
        },
        ...(options.extraActions?.(context) ?? []),
        {
          name: SOAK_SAVE_LOAD_ACTION,
          every: 7,
          run: async () => {
            await peft.saveAdapter(store);
            const loaded = await options.fromPretrained(otherBase, store, {
              subfolder: peft.activeAdapter === 'default' ? undefined : secondAdapter,
            });
            tf.dispose(loaded.model.predict(x) as tf.Tensor);
            loaded.unload();
          },
        },
      ],
      dispose: async () => {
        optimizers.forEach((o) => o.dispose());
        tf.dispose([x, y]);
        peft.unload();
        // Hundreds of steps, merges (where the method has them) and saves never wrote the frozen base.
        expectWeightsBitIdentical(baseSnapshot, await snapshotWeights(base));
        base.dispose();
        otherBase.dispose();
      },
    };
  };
}

/**
 * input [6] → fc1 (12, relu) → fc2 (8, tanh) → head (3, linear), Sequential, glorot-uniform kernels
 * seeded from `seed`; biases zero, or with `randomBiases` drawn from N(0, 0.1²) (for methods that
 * train or scale them).
 */
export function makeSoakMlp(seed: number, { randomBiases = false } = {}): tfl.LayersModel {
  const dense = (
    name: string,
    units: number,
    activation: 'relu' | 'tanh' | 'linear',
    s: number,
    inputShape?: number[],
  ) =>
    tfl.layers.dense({
      name,
      units,
      activation,
      inputShape,
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed * 10 + s }),
      ...(randomBiases
        ? { biasInitializer: tfl.initializers.randomNormal({ stddev: 0.1, seed: seed * 10 + 5 + s }) }
        : {}),
    });
  return tfl.sequential({
    layers: [dense('fc1', 12, 'relu', 1, [6]), dense('fc2', 8, 'tanh', 2), dense('head', 3, 'linear', 3)],
  });
}

/**
 * runSoak over peftSoakSubject(options) for `steps` steps (logging every SOAK_DEBUG steps), then one
 * summary line tagged `tag` (e.g. 'lora-soak'); returns the report for the caller's checks.
 */
export async function runPeftSoak<Peft extends SoakPeftModel<Store>, Store>(
  tag: string,
  steps: number,
  options: PeftSoakSubjectOptions<Peft, Store>,
): Promise<SoakReport> {
  const report = await runSoak({
    steps,
    logEvery: Number(process.env.SOAK_DEBUG ?? 0),
    log: (l) => console.log(l),
    setup: peftSoakSubject(options),
  });
  console.log(
    `[${tag} ${tf.getBackend()}] ${report.steps} steps in ${(report.milliseconds / 1000).toFixed(1)} s; ` +
      `flat from step ${report.flatFrom} at ${report.tensors[report.flatFrom]} tensors / ${report.bytes[report.flatFrom]} bytes; ` +
      `actions: ${JSON.stringify(report.actionCounts)}`,
  );
  return report;
}

/**
 * A method package's soak test, on every backend: the shared subject for 100 steps (CI;
 * TFJS_PEFT_SOAK=long: 1,000, TFJS_PEFT_SOAK=<n>: n), memory flat from step 10 (runSoak), and the
 * save → load action run every 7th step. `activity` completes the test's title ("… steps with …").
 */
export function describePeftSoak<Peft extends SoakPeftModel<Store>, Store>(
  method: string,
  activity: string,
  options: PeftSoakSubjectOptions<Peft, Store>,
): void {
  const steps = soakSteps(process.env.TFJS_PEFT_SOAK, 100, 1000);
  describeEachBackend(`${method} soak`, () => {
    it(
      `${steps} training steps with ${activity}: memory flat from step 10`,
      async () => {
        const report = await runPeftSoak(`${method} soak`, steps, options);
        expect(report.actionCounts[SOAK_SAVE_LOAD_ACTION]).toBe(Math.floor((steps - 1) / 7));
      },
      steps > 100 ? 1_800_000 : 300_000,
    );
  });
}
