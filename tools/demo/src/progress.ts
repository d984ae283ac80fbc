// A small progress bar for model.fit: epoch, batch, loss, ETA. Redraws one line on a TTY, prints
// plain lines (at most ~10 per epoch) otherwise, e.g. in CI logs.
import * as tf from '@tensorflow/tfjs-core';

export interface EpochRecord {
  epoch: number;
  seconds: number;
  loss: number;
  accuracy?: number;
}

export interface TrainingMonitor {
  /** Callbacks object for `model.fit`. */
  callbacks: {
    onEpochBegin: (epoch: number) => Promise<void>;
    onBatchEnd: (batch: number, logs?: Record<string, number>) => Promise<void>;
    onEpochEnd: (epoch: number, logs?: Record<string, number>) => Promise<void>;
  };
  epochs: EpochRecord[];
  /** Largest `tf.memory().numBytes` seen at a batch end. */
  peakBytes: number;
  /** Loss of each batch, in order (for loss curves). */
  batchLosses: number[];
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}

export function trainingMonitor(label: string, totalEpochs: number, batchesPerEpoch: number, stream = process.stdout): TrainingMonitor {
  const tty = Boolean(stream.isTTY);
  const width = 24;
  const monitor: TrainingMonitor = { epochs: [], peakBytes: tf.memory().numBytes, batchLosses: [], callbacks: undefined! };
  let epochStart = 0;
  let runStart = 0;
  let currentEpoch = 0;
  let lossSum = 0;
  let printedAt = -1;
  const draw = (batch: number, loss: number) => {
    const done = currentEpoch * batchesPerEpoch + batch + 1;
    const total = totalEpochs * batchesPerEpoch;
    const elapsed = (performance.now() - runStart) / 1000;
    const eta = (elapsed / done) * (total - done);
    const filled = Math.round((width * (batch + 1)) / batchesPerEpoch);
    const line =
      `${label} epoch ${currentEpoch + 1}/${totalEpochs} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
      `batch ${batch + 1}/${batchesPerEpoch} loss ${loss.toFixed(4)} ETA ${formatSeconds(eta)}`;
    if (tty) stream.write(`\r${line}\x1b[K`);
    else {
      const decile = Math.floor((10 * (batch + 1)) / batchesPerEpoch);
      if (decile !== printedAt) {
        printedAt = decile;
        stream.write(`${line}\n`);
      }
    }
  };
  monitor.callbacks = {
    onEpochBegin: async (epoch) => {
      currentEpoch = epoch;
      epochStart = performance.now();
      if (runStart === 0) runStart = epochStart;
      lossSum = 0;
      printedAt = -1;
    },
    onBatchEnd: async (batch, logs) => {
      monitor.peakBytes = Math.max(monitor.peakBytes, tf.memory().numBytes);
      const loss = logs?.loss ?? NaN;
      monitor.batchLosses.push(loss);
      lossSum += loss;
      draw(batch, lossSum / (batch + 1));
    },
    onEpochEnd: async (epoch, logs) => {
      const seconds = (performance.now() - epochStart) / 1000;
      monitor.epochs.push({ epoch, seconds, loss: logs?.loss ?? NaN, accuracy: logs?.acc ?? logs?.accuracy });
      if (tty) stream.write('\n');
      stream.write(
        `${label} epoch ${epoch + 1}/${totalEpochs} done in ${seconds.toFixed(1)} s, loss ${(logs?.loss ?? NaN).toFixed(4)}` +
          (logs?.acc !== undefined ? `, train accuracy ${(100 * logs.acc).toFixed(1)}%` : '') +
          '\n',
      );
    },
  };
  return monitor;
}
