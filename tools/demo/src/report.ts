// The comparison table (Markdown, for the terminal and report.md) and the raw numbers (report.json).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MethodId } from './methods';

export interface Accuracy {
  correct: number;
  total: number;
  accuracy: number;
}

export interface MethodResult {
  id: MethodId;
  label: string;
  description: string;
  learningRate: number;
  trainableParams: number;
  allParams: number;
  trainablePercent: number;
  epochs: { epoch: number; seconds: number; loss: number; accuracy?: number }[];
  meanEpochSeconds: number;
  stepsPerEpoch: number;
  meanStepMs: number;
  /** Largest tf.memory().numBytes at any moment of training (engine hook, memory.ts); = sampledPeakBytes when not hooked. */
  peakTensorBytes: number;
  /** Largest tf.memory().numBytes sampled at batch begin/end (what survives between steps). */
  sampledPeakBytes: number;
  /** tf.memory().numBytes just before training (base model, adapter, data; no optimizer state yet). */
  startBytes: number;
  /** Largest bytes of distinct data buffers during training (a reshape/clone sharing its input's buffer counted once; memory.ts). */
  peakBufferBytes: number;
  startBufferBytes: number;
  peakHooked: boolean;
  adapter: { dir: string; bytes: number; files: string[]; what: string };
  /** Only with --eval-validation (nothing is selected on validation in this run). */
  validation?: { after: Accuracy };
  test: { before: Accuracy; after: Accuracy };
  /**
   * How test.before was obtained: the new (untrained) model's predictions on `texts` test texts were compared
   * with the pre-trained model's. `unchanged` (max |Δp| ≤ 1e-5): test.before is the pre-trained model's
   * accuracy (report.model.testAccuracy); otherwise the whole test set was evaluated.
   */
  beforeCheck: { texts: number; maxAbsProbabilityDifference: number; unchanged: boolean };
  batchLosses: number[];
  /** The loss-curve chart written for this run. */
  chart: string;
  /** Wall time of each phase of this method's run, in seconds. */
  phaseSeconds: PhaseSeconds;
  /** Live tensors before this method's run (the data sets) and after disposing everything it created: equal when nothing leaked. */
  tensorsBeforeRun: number;
  tensorsAfterDispose: number;
}

/** build: fresh model + method applied; evaluateBefore / evaluateAfter: test (and validation) predictions; train: fit; save: files written; reload: fresh base + load + test predictions. */
export type PhaseSeconds = Partial<Record<'build' | 'evaluateBefore' | 'train' | 'evaluateAfter' | 'save' | 'reload', number>>;

export interface ReloadCheck {
  method: MethodId;
  /** `PeftModel.fromPretrained` for adapters; the safetensors file read back into a fresh model for the non-PEFT rows. */
  how: string;
  adapterDir: string;
  testAccuracyTrained: number;
  testAccuracyReloaded: number;
  maxAbsProbabilityDifference: number;
  passed: boolean;
}

export interface DemoReport {
  date: string;
  command: string;
  task: { id: string; title: string; classNames: readonly string[] };
  backend: string;
  unavailableBackends: Record<string, string>;
  machine: { platform: string; arch: string; cpus: number; cpuModel: string; node: string; tfjsCore: string; loadAverageStart: number[]; loadAverageEnd: number[] };
  options: Record<string, unknown>;
  data: {
    corpus: string;
    read: number;
    duplicatesRemoved: number;
    split: Record<'train' | 'validation' | 'test', Record<string, number>>;
    used: Record<'train' | 'validation' | 'test', Record<string, number>>;
    meanTokens: number;
    /** Share of examples with at least maxLength tokens (cut to maxLength). */
    filledFraction: number;
  };
  /** testAccuracy: the pre-trained model with the seeded head, before any method. */
  model: { name: string; params: number; weightBytes: number; loadSeconds: number; testAccuracy: Accuracy };
  results: MethodResult[];
  reloadChecks: ReloadCheck[];
  /** Methods asked for that did not run: not available in this checkout, or failed (with the error). */
  skipped: { method: MethodId; label: string; status: 'not yet available' | 'refused' | 'failed'; reason: string }[];
  /** Order of the rows (the methods asked for). */
  methodOrder: MethodId[];
  charts: { overview: string };
  memory: { start: { numTensors: number; numBytes: number }; end: { numTensors: number; numBytes: number }; peakHooked: boolean };
  wallSeconds: number;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

const pct = (a: Accuracy) => `${(100 * a.accuracy).toFixed(1)}%`;
const share = (percent: number) => (percent >= 10 ? percent.toFixed(0) : percent.toPrecision(2));
const group = (n: number) => n.toLocaleString('en-US');
const sizesOf = (s: Record<string, number>) => {
  const total = Object.values(s).reduce((a, b) => a + b, 0);
  return `${total} (${Object.entries(s).map(([k, v]) => `${v} ${k}`).join(' / ')})`;
};

export function resultsTable(report: DemoReport): string {
  const full = report.results.find((r) => r.id === 'full');
  const header =
    '| method | trainable params | % of model | train time / epoch | peak tensor memory | adapter file size | test accuracy (before → after) | vs full FT |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|';
  const rows = report.methodOrder.map((id) => {
    const r = report.results.find((x) => x.id === id);
    if (!r) {
      const s = report.skipped.find((x) => x.method === id)!;
      return [s.label, '—', '—', '—', '—', '—', s.status === 'not yet available' ? `*${s.reason}*` : `**${s.status}**: ${s.reason.split('\n')[0]}`, '—'].join(' | ');
    }
    return [
      r.label,
      group(r.trainableParams),
      `${r.trainablePercent.toPrecision(3)}%`,
      `${r.meanEpochSeconds.toFixed(1)} s (${r.meanStepMs.toFixed(0)} ms/step)`,
      `${formatBytes(r.peakTensorBytes)} (+${formatBytes(r.peakTensorBytes - r.startBytes)})`,
      `${formatBytes(r.adapter.bytes)} (${share((100 * r.adapter.bytes) / report.model.weightBytes)}%)`,
      `${pct(r.test.before)} → **${pct(r.test.after)}**`,
      full ? `${((100 * r.test.after.accuracy) / full.test.after.accuracy).toFixed(1)}%` : '—',
    ].join(' | ');
  });
  return [header, rule, ...rows.map((row) => `| ${row} |`)].join('\n');
}

const total = (s: Record<string, number>) => Object.values(s).reduce((a, b) => a + b, 0);

/** What this run did at less than full size, worked out from the run's own numbers. */
export function reducedNote(report: DemoReport): string {
  const d = report.data;
  const notes: string[] = [];
  if (report.options.quick) notes.push('`--quick` smoke-test sizes');
  if (total(d.used.train) < total(d.split.train)) notes.push(`trained on ${total(d.used.train)} of the ${total(d.split.train)} training texts (balanced subset)`);
  if (total(d.used.test) < total(d.split.test))
    notes.push(
      `evaluated on ${total(d.used.test)} of ${total(d.split.test)} test texts` +
        (report.options.evalValidation ? ` and ${total(d.used.validation)} of ${total(d.split.validation)} validation texts` : ''),
    );
  if (d.filledFraction > 0) notes.push(`${(100 * d.filledFraction).toFixed(0)}% of texts cut to ${report.options.maxLength} tokens`);
  notes.push(`${report.options.epochs} epoch(s), no learning-rate search (one fixed rate per method)`);
  return `Reduced: ${notes.join('; ')}.`;
}

/** How the "before" accuracies were obtained. */
export function beforeNote(report: DemoReport): string {
  const reused = report.results.filter((r) => r.beforeCheck.unchanged);
  const evaluated = report.results.filter((r) => !r.beforeCheck.unchanged);
  const worst = Math.max(0, ...reused.map((r) => r.beforeCheck.maxAbsProbabilityDifference));
  const parts = [`Test accuracy before training: the pre-trained model with the seeded head scores ${pct(report.model.testAccuracy)}.`];
  if (reused.length)
    parts.push(
      `For ${reused.map((r) => r.id).join(', ')} the untrained model gave the same probabilities as the pre-trained one on ${reused[0].beforeCheck.texts} test texts (max |Δp| ${worst.toExponential(1)}; a new adapter leaves the outputs unchanged), so that score is their "before".`,
    );
  if (evaluated.length)
    parts.push(`${evaluated.map((r) => r.id).join(', ')} ${evaluated.length === 1 ? 'changes' : 'change'} the outputs from the start: evaluated on the whole test set.`);
  return parts.join(' ');
}

export function markdownReport(report: DemoReport): string {
  const d = report.data;
  const m = report.machine;
  const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  const lines = [
    `# tfjs-peft demo: ${report.task.title} with the Universal Sentence Encoder lite`,
    '',
    `Run ${report.date} · \`${report.command}\` · backend **${report.backend}** · ${m.cpus} × ${m.cpuModel}, Node ${m.node}, tfjs ${m.tfjsCore} · load average (1/5/15 min) ${load(m.loadAverageStart)} at the start, ${load(m.loadAverageEnd)} at the end · wall time ${report.wallSeconds.toFixed(0)} s`,
    '',
    resultsTable(report),
    '',
    `Model: ${report.model.name}, ${group(report.model.params)} parameters, ${formatBytes(report.model.weightBytes)} of float32 weights (with the ${report.task.classNames.length}-class head). "% of model" is PEFT's trainable% (trainable / all parameters of the model being trained, adapter included).`,
    `Data: ${d.corpus}; ${d.read} texts read, ${d.duplicatesRemoved} duplicates removed; split train ${sizesOf(d.split.train)}, validation ${sizesOf(d.split.validation)}, test ${sizesOf(d.split.test)}.`,
    `Used: train ${sizesOf(d.used.train)} (balanced), ${report.options.evalValidation ? `validation ${sizesOf(d.used.validation)}` : 'validation not evaluated (nothing is chosen on it here; `--eval-validation` evaluates it)'}, test ${sizesOf(d.used.test)}; ${report.options.maxLength} tokens per text (mean ${d.meanTokens.toFixed(1)} after cutting; ${(100 * d.filledFraction).toFixed(0)}% fill all ${report.options.maxLength}), each text first cut to ${report.options.maxChars} characters.`,
    reducedNote(report),
    `Training: ${report.options.epochs} epoch(s), batch ${report.options.batchSize}, Adam with \`releaseEarly\` from @tfjs-peft/core (learning rate per method: ${report.results.map((r) => `${r.id} ${r.learningRate}`).join(', ')}); every run starts from a fresh copy of the pre-trained model and the same seeded head; every PEFT method also trains a copy of the head (modulesToSave), saved in its adapter.`,
    `Train time / epoch: wall time of fit's epoch (forward, backward, Adam update; ${report.results[0]?.stepsPerEpoch ?? '?'} steps), mean over epochs; it includes the first epoch's warm-up.`,
    report.memory.peakHooked
      ? 'Peak tensor memory: the largest `tf.memory().numBytes` at any moment of training, recorded by a hook on the engine\'s byte counter (every tensor allocation and disposal, activations and gradients inside a step included); in brackets the growth over the bytes alive just before training (base model, adapter, data) — optimizer state + activations + gradients. Batch-boundary samples (onBatchBegin/onBatchEnd) are in report.json as sampledPeakBytes. Memory a backend uses outside tensors (TensorFlow scratch space inside a kernel) is not counted.'
      : 'Peak tensor memory: the largest `tf.memory().numBytes` sampled at batch begin/end (the engine hook was not available): tensors alive between steps, not the transient peak inside a step.',
    `Adapter file size: the files written to \`<out>/<method>/\` (PEFT methods: \`saveAdapter\`, adapter_config.json + adapter_model.safetensors incl. the head copy; linear probe: the head weights; full fine-tuning: all weights), in brackets as a share of the model's float32 weights.`,
    beforeNote(report),
    `vs full FT: test accuracy as a share of full fine-tuning's in this run. Evaluation sets of a few hundred texts: one text is ${d.used.test ? (100 / Object.values(d.used.test).reduce((a, b) => a + b, 0)).toFixed(2) : '?'} points of test accuracy, so differences of a point or two are within noise.`,
    `Loss curves: ${report.results.map((r) => `[${r.id}](${r.chart})`).join(', ')}; all methods: [${report.charts.overview}](${report.charts.overview}).`,
  ];
  for (const c of report.reloadChecks) {
    lines.push(
      `Reload check (${c.method}): ${c.how} from ${c.adapterDir}: test accuracy ${(100 * c.testAccuracyReloaded).toFixed(2)}% vs ${(100 * c.testAccuracyTrained).toFixed(2)}% trained, largest probability difference ${c.maxAbsProbabilityDifference.toExponential(2)} → ${c.passed ? 'PASS' : 'FAIL'}.`,
    );
  }
  for (const s of report.skipped)
    lines.push(`${s.status === 'failed' ? 'Failed' : s.status === 'refused' ? 'Refused by the library on this model (a typed error)' : 'Not run'}: ${s.label}: ${s.reason}.`);
  for (const [name, why] of Object.entries(report.unavailableBackends)) lines.push(`Backend ${name} unavailable: ${why}.`);
  lines.push(
    `Tensors: ${report.memory.start.numTensors} (${formatBytes(report.memory.start.numBytes)}) before the runs, ${report.memory.end.numTensors} (${formatBytes(report.memory.end.numBytes)}) after.`,
  );
  return lines.join('\n') + '\n';
}

export function writeReport(report: DemoReport, outDir: string): { md: string; json: string } {
  mkdirSync(outDir, { recursive: true });
  const md = path.join(outDir, 'report.md');
  const json = path.join(outDir, 'report.json');
  writeFileSync(md, markdownReport(report));
  writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
  return { md, json };
}
