// `pnpm test:demo` (part of `pnpm test`): runs `pnpm demo --quick` into a temporary folder and checks
// what it produced — every method has a row (or a typed refusal where one is known), every number in
// report.json is present and sane, each adapter folder holds the files the report names with the bytes
// it reports, every chart is an SVG, every reload check passed, report.md holds the table, no tensor
// was left alive. Exit status 1 with the list of problems otherwise.
//
//   node --conditions=@tfjs-peft/source --import tsx tools/demo/src/smoke.ts [--keep] [demo options…]
//
// Extra options go to the demo (e.g. `--methods=lora,ia3`); --keep leaves the output folder in place.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ALL_METHODS, TRAINABLE_WEIGHTS_FILE, type MethodId } from './methods';
import type { DemoReport } from './report';

/**
 * Methods the library may refuse on this model with a typed error (a documented finding, not a
 * regression). None since prefix tuning learned per-block attention widths: every row must train.
 */
const MAY_BE_REFUSED: readonly MethodId[] = [];
const NON_PEFT: readonly MethodId[] = ['full', 'linear-probe'];

const isFiniteNumber = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Everything wrong with the output folder of one demo run (empty when it is complete). */
export function checkDemoOutput(outDir: string, expectedMethods: readonly MethodId[]): string[] {
  const problems: string[] = [];
  const problem = (message: string) => problems.push(message);
  const jsonFile = path.join(outDir, 'report.json');
  const mdFile = path.join(outDir, 'report.md');
  if (!existsSync(jsonFile)) return [`${jsonFile} was not written`];
  if (!existsSync(mdFile)) problem(`${mdFile} was not written`);
  const report = JSON.parse(readFileSync(jsonFile, 'utf8')) as DemoReport;

  if (!report.backend) problem('report.json names no backend');
  if (report.methodOrder.join() !== expectedMethods.join())
    problem(`methodOrder ${report.methodOrder.join()} ≠ ${expectedMethods.join()}`);
  for (const id of expectedMethods) {
    const result = report.results.find((r) => r.id === id);
    const skipped = report.skipped.find((s) => s.method === id);
    if (result && skipped) problem(`${id}: both a result and a skip`);
    if (result) continue;
    if (!skipped) problem(`${id}: neither a result nor a reason`);
    else if (!(skipped.status === 'refused' && MAY_BE_REFUSED.includes(id)))
      problem(`${id}: ${skipped.status}: ${skipped.reason}`);
  }

  const epochs = Number(report.options.epochs);
  for (const r of report.results) {
    const at = (what: string) => `${r.id}: ${what}`;
    if (!(Number.isInteger(r.trainableParams) && r.trainableParams > 0 && r.trainableParams <= r.allParams))
      problem(at(`trainable params ${r.trainableParams} of ${r.allParams}`));
    if (!(isFiniteNumber(r.trainablePercent) && r.trainablePercent > 0 && r.trainablePercent <= 100))
      problem(at(`trainable% ${r.trainablePercent}`));
    if (
      r.epochs.length !== epochs ||
      !r.epochs.every((e) => isFiniteNumber(e.seconds) && e.seconds > 0 && isFiniteNumber(e.loss))
    )
      problem(at(`epochs ${JSON.stringify(r.epochs)}`));
    if (
      !(
        isFiniteNumber(r.meanEpochSeconds) &&
        r.meanEpochSeconds > 0 &&
        isFiniteNumber(r.meanStepMs) &&
        r.meanStepMs > 0
      )
    )
      problem(at('no train time'));
    if (r.batchLosses.length !== epochs * r.stepsPerEpoch || !r.batchLosses.every(isFiniteNumber))
      problem(at(`batch losses ${r.batchLosses.length}, expected ${epochs * r.stepsPerEpoch} finite`));
    if (!(isFiniteNumber(r.startBytes) && r.startBytes > 0 && r.peakTensorBytes > r.startBytes))
      problem(at(`peak tensor memory ${r.peakTensorBytes} vs ${r.startBytes} before training`));
    for (const [name, a] of [
      ['test before', r.test.before],
      ['test after', r.test.after],
    ] as const) {
      if (
        !(
          Number.isInteger(a.correct) &&
          a.total > 0 &&
          a.correct <= a.total &&
          Math.abs(a.accuracy - a.correct / a.total) < 1e-12
        )
      )
        problem(at(`${name} accuracy ${JSON.stringify(a)}`));
    }
    if (!r.beforeCheck || !isFiniteNumber(r.beforeCheck.maxAbsProbabilityDifference))
      problem(at('no before check'));
    const phases = Object.values(r.phaseSeconds ?? {});
    if (phases.length < 6 || !phases.every((s) => isFiniteNumber(s) && s >= 0))
      problem(at(`phase times ${JSON.stringify(r.phaseSeconds)}`));

    // Adapter files: the ones named, with the bytes reported.
    const expectedFiles = NON_PEFT.includes(r.id)
      ? [TRAINABLE_WEIGHTS_FILE]
      : ['adapter_config.json', 'adapter_model.safetensors'];
    for (const file of expectedFiles)
      if (!r.adapter.files.includes(file))
        problem(at(`${file} not among the files written (${r.adapter.files.join(', ')})`));
    let bytes = 0;
    for (const file of r.adapter.files) {
      const full = path.join(r.adapter.dir, file);
      if (!existsSync(full)) problem(at(`${full} is missing`));
      else bytes += statSync(full).size;
    }
    if (bytes !== r.adapter.bytes)
      problem(at(`adapter files hold ${bytes} bytes, the report says ${r.adapter.bytes}`));
    if (!NON_PEFT.includes(r.id) && existsSync(path.join(r.adapter.dir, 'adapter_config.json'))) {
      try {
        const config = JSON.parse(readFileSync(path.join(r.adapter.dir, 'adapter_config.json'), 'utf8')) as {
          peft_type?: unknown;
        };
        if (typeof config.peft_type !== 'string') problem(at('adapter_config.json has no peft_type'));
      } catch (error) {
        problem(at(`adapter_config.json: ${String(error)}`));
      }
    }

    const chart = path.join(outDir, r.chart);
    if (!existsSync(chart) || !readFileSync(chart, 'utf8').trimStart().startsWith('<svg'))
      problem(at(`chart ${chart} missing or not an SVG`));
    if (r.tensorsAfterDispose !== r.tensorsBeforeRun)
      problem(
        at(`${r.tensorsAfterDispose} tensors alive after disposing the run, ${r.tensorsBeforeRun} before it`),
      );

    const reload = report.reloadChecks.find((c) => c.method === r.id);
    if (!reload) problem(at('no reload check'));
    else if (!reload.passed) problem(at(`reload check failed: ${JSON.stringify(reload)}`));
  }
  const overview = path.join(outDir, report.charts.overview);
  if (!existsSync(overview) || !readFileSync(overview, 'utf8').trimStart().startsWith('<svg'))
    problem(`overview chart ${overview} missing or not an SVG`);
  if (report.memory.end.numTensors !== report.memory.start.numTensors)
    problem(
      `tensors: ${report.memory.start.numTensors} at the start, ${report.memory.end.numTensors} at the end`,
    );
  if (!(isFiniteNumber(report.wallSeconds) && report.wallSeconds > 0)) problem('no wall time');

  if (existsSync(mdFile)) {
    const md = readFileSync(mdFile, 'utf8');
    if (
      !md.includes(
        '| method | trainable params | % of model | train time / epoch | peak tensor memory | adapter file size | test accuracy',
      )
    )
      problem('report.md has no results table');
    for (const id of expectedMethods) {
      const label =
        report.results.find((r) => r.id === id)?.label ?? report.skipped.find((s) => s.method === id)?.label;
      if (label && !md.includes(`| ${label} |`)) problem(`report.md has no row for ${label}`);
    }
  }
  return problems;
}

function main(): number {
  const args = process.argv.slice(2).filter((a) => a !== '--');
  const keep = args.includes('--keep');
  const demoArgs = args.filter((a) => a !== '--keep');
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'tfjs-peft-demo-quick-'));
  const mainTs = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.ts');
  const started = performance.now();
  const run = spawnSync(
    process.execPath,
    ['--conditions=@tfjs-peft/source', '--import', 'tsx', mainTs, '--quick', `--out=${outDir}`, ...demoArgs],
    {
      stdio: 'inherit',
      env: { ...process.env, INIT_CWD: process.cwd() },
    },
  );
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  const methodsArg = demoArgs.find((a) => a.startsWith('--methods='));
  const expected = methodsArg
    ? ALL_METHODS.filter((m) => methodsArg.slice('--methods='.length).split(',').includes(m))
    : ALL_METHODS;
  const problems = run.status === 0 ? [] : [`pnpm demo --quick exited with ${run.status ?? run.signal}`];
  problems.push(...checkDemoOutput(outDir, expected));
  if (problems.length > 0) {
    console.error(
      `\n[demo smoke test] FAILED after ${seconds} s (output kept in ${outDir}):\n  - ${problems.join('\n  - ')}`,
    );
    return 1;
  }
  console.log(
    `\n[demo smoke test] passed in ${seconds} s: ${expected.length} methods, table, JSON, adapters, charts and reload checks in ${outDir}${keep ? '' : ' (removed)'}`,
  );
  if (!keep) rmSync(outDir, { recursive: true, force: true });
  return 0;
}

process.exitCode = main();
