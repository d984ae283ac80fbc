import * as tf from '@tensorflow/tfjs-core';
import { PeftError } from './errors';

/** Training produced a NaN or infinite loss; the adapter was restored to its last good state. */
export class NonFiniteLossError extends PeftError {
  constructor(
    readonly epoch: number,
    readonly batch: number,
    readonly loss: number,
    /** The batch after whose update the restored weights were taken; -1 for the weights training began with. */
    readonly restoredFromBatch: number,
  ) {
    super(
      `Training loss is ${loss} at epoch ${epoch}, batch ${batch}; the adapter was restored to its state ` +
        (restoredFromBatch < 0 ? 'from before training' : `after batch ${restoredFromBatch}`) +
        '. Lower the learning rate (or clip gradients) and recreate the optimizer, whose state may hold NaN.',
    );
  }
}

export interface NonFiniteLossGuardOptions {
  /**
   * 'stop' (default): restore and set model.stopTraining; 'throw': also make fit() reject with
   * NonFiniteLossError once training has stopped (from onTrainEnd; custom loops read `restored`).
   */
  onNonFinite?: 'stop' | 'throw';
  /** Take a snapshot of the trainable adapter variables every K batches (default 1). */
  snapshotEvery?: number;
  /** Told about each restore, e.g. to log it. */
  onRestore?: (error: NonFiniteLossError) => void;
}

/** What the guard needs of a PeftModel: the variables it trains and the model fit() runs. */
export interface GuardedModel {
  readonly trainableVariables: tf.Variable[];
  readonly model: { stopTraining: boolean; history?: { syncData?(): Promise<void> } };
}

export interface NonFiniteLossGuard {
  onTrainBegin(logs?: unknown): Promise<void>;
  onEpochBegin(epoch: number, logs?: unknown): Promise<void>;
  onBatchEnd(batch: number, logs?: { loss?: number | tf.Scalar }): Promise<void>;
  onTrainEnd(logs?: unknown): Promise<void>;
  /** The restore that happened, if any. */
  readonly restored: NonFiniteLossError | null;
  /** Frees the snapshots (done by onTrainEnd; for custom loops that stop early). */
  dispose(): void;
}

interface Snapshot {
  batch: number;
  values: tf.Tensor[];
}

/**
 * A tfjs training callback (pass it in `fit(x, y, { callbacks: [guard] })`, or call its methods from
 * a custom loop) that keeps the trainable adapter variables' last good values and, when a batch's loss
 * is NaN or ±Infinity, writes them back bit-exactly and stops training (or throws NonFiniteLossError).
 *
 * "Good" means verified: a snapshot taken after batch b becomes the restore point only once batch
 * b + 1's loss — computed with exactly those weights — is finite. Snapshots are tensor clones that
 * share the variables' data (no copy, no read-back): holding one costs the adapter's size once.
 */
export function nonFiniteLossGuard(
  peft: GuardedModel,
  options: NonFiniteLossGuardOptions = {},
): NonFiniteLossGuard {
  const { onNonFinite = 'stop', snapshotEvery = 1, onRestore } = options;
  if (onNonFinite !== 'stop' && onNonFinite !== 'throw') {
    throw new PeftError(
      `nonFiniteLossGuard: onNonFinite must be 'stop' or 'throw', not ${String(onNonFinite)}`,
    );
  }
  if (!Number.isSafeInteger(snapshotEvery) || snapshotEvery < 1) {
    throw new PeftError(
      `nonFiniteLossGuard: snapshotEvery must be a positive integer, not ${String(snapshotEvery)}`,
    );
  }
  let variables: tf.Variable[] = [];
  let lastGood: Snapshot | null = null;
  let pending: Snapshot | null = null;
  let epoch = 0;
  let batchesSeen = 0;
  let restored: NonFiniteLossError | null = null;

  const take = (batch: number): Snapshot => ({ batch, values: variables.map((v) => tf.clone(v)) });
  const drop = (snapshot: Snapshot | null) => snapshot?.values.forEach((t) => t.dispose());
  const dispose = () => {
    drop(lastGood);
    drop(pending);
    lastGood = pending = null;
  };

  return {
    get restored() {
      return restored;
    },
    dispose,
    async onTrainBegin() {
      dispose();
      restored = null;
      batchesSeen = 0;
      variables = [...peft.trainableVariables];
      lastGood = take(-1);
    },
    async onEpochBegin(e: number) {
      epoch = e;
    },
    async onBatchEnd(batch: number, logs?: { loss?: number | tf.Scalar }) {
      if (lastGood === null) throw new PeftError('nonFiniteLossGuard: onBatchEnd before onTrainBegin');
      const raw = logs?.loss;
      const loss = raw instanceof tf.Tensor ? (await raw.data())[0] : raw;
      if (typeof loss !== 'number') return;
      if (!Number.isFinite(loss)) {
        const good = lastGood;
        variables.forEach((v, i) => v.assign(good.values[i]));
        restored = new NonFiniteLossError(epoch, batch, loss, good.batch);
        drop(pending);
        pending = null;
        onRestore?.(restored);
        // Training stops after this batch; in 'throw' mode onTrainEnd then rejects. (Throwing here
        // would leak the batch's loss tensors: tfjs disposes them only after the callbacks return.)
        peft.model.stopTraining = true;
        return;
      }
      // This loss was computed with the pending snapshot's weights: they are good.
      if (pending) {
        drop(lastGood);
        lastGood = pending;
        pending = null;
      }
      batchesSeen++;
      if (batchesSeen % snapshotEvery === 0) pending = take(batch);
    },
    async onTrainEnd() {
      dispose();
      if (restored && onNonFinite === 'throw') {
        // fit() resolves its History's loss tensors after onTrainEnd; rejecting here would strand
        // them, so resolve them first (History.syncData is idempotent).
        await peft.model.history?.syncData?.();
        throw restored;
      }
    },
  };
}
