// pnpm bench [--backends=…] [--methods=…] [--steps=N] [--quick] [--torch=PATH|run|none]
// Times training steps of every PEFT method on the pre-trained USE-lite encoder + classifier head, on
// every backend present, one child process per backend; prints a table and writes
// tools/bench/results/<date>-<machine>.{json,md} and results/latest.md. See ../README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseOptions, planFor, USAGE } from './options';
import { markdownReport, terminalTable, type BenchRun } from './report';
import type { BackendResult, TorchResult, WorkerRequest } from './types';

const here = path.dirname(fileURLToPath(import.meta.url));
const benchDir = path.resolve(here, '..');
const repoRoot = path.resolve(benchDir, '..', '..');
const log = (line: string) => console.log(line);

function machineName(): string {
  const cpu = os.cpus()[0]?.model ?? 'cpu';
  const slug = cpu
    .replace(/\(R\)|\(TM\)|CPU|Processor|@.*$/gi, '')
    .trim()
    .replace(/[^A-Za-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .toLowerCase();
  return `${os.cpus().length}core-${slug}`;
}

function runTorch(outFile: string, log: (l: string) => void): string | undefined {
  const python = path.join(repoRoot, '.venv-hf', 'bin', 'python');
  if (!existsSync(python))
    return `.venv-hf/bin/python not found (see docs/environment: the torch reference is optional)`;
  log(
    `[bench] PyTorch reference: ${path.relative(repoRoot, python)} tools/bench/torch_reference.py --out ${path.relative(repoRoot, outFile)}`,
  );
  const r = spawnSync(python, [path.join(benchDir, 'torch_reference.py'), '--out', outFile], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return r.status === 0 ? undefined : `torch_reference.py exited with ${r.status}`;
}

async function main(): Promise<void> {
  const parsed = parseOptions(process.argv.slice(2));
  if (parsed === 'help') {
    log(USAGE);
    return;
  }
  const options = parsed;
  if (options.report) {
    // Re-render a saved run (e.g. after a report change): no measuring.
    const file = path.resolve(process.env.INIT_CWD ?? process.cwd(), options.report);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as BenchRun;
    saved.cores ??= 2;
    log(terminalTable(saved));
    const md = markdownReport(saved);
    writeFileSync(file.replace(/\.json$/, '.md'), md);
    if (options.latest) writeFileSync(path.join(path.dirname(file), 'latest.md'), md);
    return;
  }
  const command = `pnpm bench ${process.argv
    .slice(2)
    .filter((a) => a !== '--')
    .join(' ')}`.trim();
  const outDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), options.out);
  mkdirSync(outDir, { recursive: true });
  const date = new Date().toISOString().slice(0, 10);
  const machine = machineName();
  const loadStart = os.loadavg();
  log(
    `[bench] ${command} · ${machine} · ${os.cpus().length} cores · load average ${loadStart.map((x) => x.toFixed(2)).join(' ')}`,
  );

  const run: BenchRun = {
    command,
    date,
    machine,
    node: process.version,
    cores: os.cpus().length,
    loadAverage: { start: loadStart, end: loadStart },
    backends: [],
  };

  // PyTorch first (when asked to run it), so both sides see the same machine state as closely as possible.
  let torchFile = path.join(outDir, 'torch-latest.json');
  if (options.torch === 'run') {
    torchFile = path.join(outDir, `${date}-${machine}-torch.json`);
    run.torchNote = runTorch(torchFile, log);
    if (run.torchNote === undefined)
      writeFileSync(path.join(outDir, 'torch-latest.json'), readFileSync(torchFile));
  } else if (options.torch && options.torch !== 'none') {
    torchFile = path.resolve(process.env.INIT_CWD ?? process.cwd(), options.torch);
  }
  if (options.torch !== 'none' && run.torchNote === undefined) {
    if (existsSync(torchFile)) {
      run.torch = {
        ...(JSON.parse(readFileSync(torchFile, 'utf8')) as TorchResult),
        source: path.relative(repoRoot, torchFile),
      };
    } else {
      run.torchNote = `${path.relative(repoRoot, torchFile)} not found (run with --torch=run where .venv-hf exists)`;
    }
  }

  const worker = path.join(here, 'worker.ts');
  for (const backend of options.backends) {
    const plan = planFor(backend, options);
    const out = path.join(os.tmpdir(), `tfjs-peft-bench-${process.pid}-${backend}.json`);
    const request: WorkerRequest = {
      backend,
      methods: options.methods,
      ...plan,
      inference: options.inference,
      profile: options.profile,
      printFlops: options.printFlops,
      wasmThreads: options.wasmThreads,
      out,
    };
    log(
      `[bench] ${backend}: batch ${plan.batch} × ${plan.length}${plan.reduced ? ` (reduced: ${plan.reduced})` : ''}, ${plan.steps} steps + ${plan.warmup} warm-up`,
    );
    const r = spawnSync(
      process.execPath,
      ['--conditions=@tfjs-peft/source', '--import', 'tsx', worker, JSON.stringify(request)],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
        cwd: benchDir,
      },
    );
    if (existsSync(out)) {
      run.backends.push(JSON.parse(readFileSync(out, 'utf8')) as BackendResult);
    } else {
      run.backends.push({
        backend,
        description: backend,
        status: 'failed',
        note: `worker exited with ${r.status ?? r.signal}`,
        batch: plan.batch,
        length: plan.length,
        reduced: plan.reduced,
        steps: plan.steps,
        warmup: plan.warmup,
        started: new Date().toISOString(),
        loadAverageAtStart: os.loadavg(),
        methods: [],
      });
    }
  }
  run.loadAverage.end = os.loadavg();

  log('');
  log(terminalTable(run));
  const base = path.join(outDir, `${date}-${machine}`);
  writeFileSync(`${base}.json`, JSON.stringify(run, null, 2) + '\n');
  const md = markdownReport(run);
  writeFileSync(`${base}.md`, md);
  if (options.latest) writeFileSync(path.join(outDir, 'latest.md'), md);
  log(`\n[bench] wrote ${path.relative(repoRoot, base)}.json, .md${options.latest ? ' and latest.md' : ''}`);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
