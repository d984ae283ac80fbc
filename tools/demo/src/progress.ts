// A small progress bar for model.fit: epoch, batch, loss, ETA. Redraws one line on a TTY, prints
// plain lines (at most ~10 per epoch) otherwise, e.g. in CI logs.
import * as tf from '@tensorflow/tfjs-core';
import type { PeakTracker } from './memory';

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
    onBatchBegin: (batch: number) => Promise<void>;
    onBatchEnd: (batch: number, logs?: Record<string, number>) => Promise<void>;
    onEpochEnd: (epoch: number, logs?: Record<string, number>) => Promise<void>;
  };
  epochs: EpochRecord[];
  /** Largest `tf.memory().numBytes` at any moment of training (engine hook; see memory.ts), or the sampled peak when not hooked. */
  peakBytes: number;
  /** Largest `tf.memory().numBytes` sampled at batch begin/end (what survives between steps). */
  sampledPeakBytes: number;
  /** `tf.memory().numBytes` when training started (model, optimizer not yet created, data). */
  startBytes: number;
  /** Largest bytes of distinct data buffers during training (views not counted twice; NaN when not hooked). */
  peakBufferBytes: number;
  /** Bytes of distinct data buffers when training started. */
  startBufferBytes: number;
  /** Whether peakBytes comes from the engine hook. */
  peakHooked: boolean;
  /** Loss of each batch, in order (for loss curves). */
  batchLosses: number[];
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}

export function trainingMonitor(
  label: string,
  totalEpochs: number,
  batchesPerEpoch: number,
  tracker: PeakTracker,
  stream = process.stdout,
): TrainingMonitor {
  const tty = Boolean(stream.isTTY);
  const width = 24;
  tracker.reset();
  const startBytes = tf.memory().numBytes;
  const monitor: TrainingMonitor = {
    epochs: [],
    peakBytes: startBytes,
    sampledPeakBytes: startBytes,
    startBytes,
    peakBufferBytes: tracker.currentBuffers(),
    startBufferBytes: tracker.currentBuffers(),
    peakHooked: tracker.hooked,
    batchLosses: [],
    callbacks: undefined!,
  };
  const sample = () => {
    monitor.sampledPeakBytes = Math.max(monitor.sampledPeakBytes, tf.memory().numBytes);
    monitor.peakBytes = Math.max(monitor.peakBytes, monitor.sampledPeakBytes, tracker.peak());
    monitor.peakBufferBytes = Math.max(monitor.peakBufferBytes, tracker.peakBuffers());
  };
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
    onBatchBegin: async () => sample(),
    onBatchEnd: async (batch, logs) => {
      sample();
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
