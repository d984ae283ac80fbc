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
  /** Largest tf.memory().numBytes seen at a batch end while training. */
  peakTensorBytes: number;
  adapter: { dir: string; bytes: number; files: string[]; what: string };
  validation: { before: Accuracy; after: Accuracy };
  test: { before: Accuracy; after: Accuracy };
  batchLosses: number[];
  tensorsAfterDispose: number;
}

export interface ReloadCheck {
  method: MethodId;
  adapterDir: string;
  testAccuracyTrained: number;
  testAccuracyReloaded: number;
  maxAbsProbabilityDifference: number;
  passed: boolean;
}

export interface DemoReport {
  date: string;
  command: string;
  backend: string;
  unavailableBackends: Record<string, string>;
  machine: { platform: string; arch: string; cpus: number; node: string; tfjsCore: string };
  options: Record<string, unknown>;
  data: {
    corpus: string;
    emailsRead: number;
    duplicatesRemoved: number;
    split: Record<'train' | 'validation' | 'test', { ham: number; spam: number }>;
    used: Record<'train' | 'validation' | 'test', { ham: number; spam: number }>;
    meanTokens: number;
    /** Share of emails with at least maxLength tokens (cut to maxLength). */
    filledFraction: number;
  };
  model: { name: string; params: number; weightBytes: number; loadSeconds: number };
  results: MethodResult[];
  reloadChecks: ReloadCheck[];
  skipped: { method: string; reason: string }[];
  memory: { start: { numTensors: number; numBytes: number }; end: { numTensors: number; numBytes: number } };
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

export function resultsTable(report: DemoReport): string {
  const header =
    '| method | trainable params | % of model | train time / epoch | peak tensor memory | adapter file size | validation acc. before → after | test acc. before → after |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---:|';
  const rows = report.results.map((r) =>
    [
      r.label,
      group(r.trainableParams),
      `${r.trainablePercent.toPrecision(3)}%`,
      `${r.meanEpochSeconds.toFixed(1)} s (${r.meanStepMs.toFixed(0)} ms/step)`,
      formatBytes(r.peakTensorBytes),
      `${formatBytes(r.adapter.bytes)} (${share((100 * r.adapter.bytes) / report.model.weightBytes)}% of model)`,
      `${pct(r.validation.before)} → ${pct(r.validation.after)}`,
      `${pct(r.test.before)} → ${pct(r.test.after)}`,
    ].join(' | '),
  );
  return [header, rule, ...rows.map((row) => `| ${row} |`)].join('\n');
}

export function markdownReport(report: DemoReport): string {
  const d = report.data;
  const sizes = (s: { ham: number; spam: number }) => `${s.ham + s.spam} (${s.ham} ham / ${s.spam} spam)`;
  const lines = [
    '# tfjs-peft demo: spam vs ham with the Universal Sentence Encoder lite',
    '',
    `Run ${report.date} · \`${report.command}\` · backend **${report.backend}** · ${report.machine.cpus} CPUs, Node ${report.machine.node}, tfjs ${report.machine.tfjsCore} · wall time ${report.wallSeconds.toFixed(0)} s`,
    '',
    resultsTable(report),
    '',
    `Model: ${report.model.name}, ${group(report.model.params)} parameters, ${formatBytes(report.model.weightBytes)} of float32 weights (with the 2-class head).`,
    `Data: ${d.corpus}; ${d.emailsRead} emails read, ${d.duplicatesRemoved} duplicates removed; split train ${sizes(d.split.train)}, validation ${sizes(d.split.validation)}, test ${sizes(d.split.test)}.`,
    `Used: train ${sizes(d.used.train)} (balanced), validation ${sizes(d.used.validation)}, test ${sizes(d.used.test)}; ${report.options.maxLength} tokens per email (mean ${d.meanTokens.toFixed(1)} after cutting; ${(100 * d.filledFraction).toFixed(0)}% of emails fill all ${report.options.maxLength}), each email first cut to ${report.options.maxChars} characters.`,
    `Training: ${report.options.epochs} epoch(s), batch ${report.options.batchSize}, Adam (learning rate per method: ${report.results.map((r) => `${r.id} ${r.learningRate}`).join(', ')}); every run starts from a fresh copy of the pre-trained model and the same seeded head.`,
    'Peak tensor memory: the largest `tf.memory().numBytes` seen at the end of a training batch (tensors alive between steps, not the transient peak inside a step).',
    'Adapter file size: the files written to the output folder (LoRA: `saveAdapter`, i.e. adapter_config.json + adapter_model.safetensors incl. the head copy; linear probe: the head weights; full fine-tuning: all weights), as a share of the model\'s float32 weights.',
  ];
  for (const c of report.reloadChecks) {
    lines.push(
      `Reload check (${c.method}): \`PeftModel.fromPretrained\` on a fresh base from ${c.adapterDir}: test accuracy ${(100 * c.testAccuracyReloaded).toFixed(2)}% vs ${(100 * c.testAccuracyTrained).toFixed(2)}% trained, largest probability difference ${c.maxAbsProbabilityDifference.toExponential(2)} → ${c.passed ? 'PASS' : 'FAIL'}.`,
    );
  }
  for (const s of report.skipped) lines.push(`Skipped: ${s.method}: ${s.reason}.`);
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
