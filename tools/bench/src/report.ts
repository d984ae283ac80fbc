// Turns the workers' results (and the PyTorch reference) into the terminal table and the Markdown report.
import type { BackendResult, MethodResult, TorchResult } from './types';

export interface BenchRun {
  command: string;
  date: string;
  machine: string;
  node: string;
  loadAverage: { start: number[]; end: number[] };
  backends: BackendResult[];
  torch?: TorchResult & { source: string };
  torchNote?: string;
  cores?: number;
}

const MiB = 1024 * 1024;
const f0 = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(0));
const f1 = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(1));
const f2 = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(2));
const pct = (x: number | undefined) =>
  x === undefined ? '—' : `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}%`;
const mib = (x: number | undefined) => (x === undefined ? '—' : (x / MiB).toFixed(0));
const ms = (x: number | undefined) => (x === undefined ? '—' : x >= 100 ? x.toFixed(0) : x.toFixed(1));

function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** PyTorch's step time for a method id, when the reference measured it at the same size. */
function torchMs(run: BenchRun, backend: BackendResult, id: string): number | undefined {
  const t = run.torch;
  if (!t || t.batch !== backend.batch || t.length !== backend.length) return undefined;
  return t.methods[id]?.medianMs;
}

function methodRows(run: BenchRun, b: BackendResult): string[][] {
  const full = b.methods.find((m) => m.id === 'full' && m.status === 'ok');
  const limit = b.matMul?.gflops;
  return b.methods.map((m: MethodResult) => {
    if (m.status !== 'ok') return [m.label, '—', m.status, `${m.note ?? ''}`, '', '', '', '', '', '', '', ''];
    const torch = torchMs(run, b, m.id);
    return [
      m.label,
      m.trainableParams!.toLocaleString('en-US'),
      `${ms(m.medianMs)} (${m.runs!.length})`,
      f0(m.tokensPerS),
      f2(m.stepGflop),
      f1(m.gflops),
      limit ? `${f0((100 * m.gflops!) / limit)}%` : '—',
      `${mib(m.peakBytes)} / ${mib(m.residentBytes)}`,
      full ? f2(m.medianMs! / full.medianMs!) : '—',
      full ? f2(m.peakBytes! / full.peakBytes!) : '—',
      torch ? `${f2(m.medianMs! / torch)}×` : '—',
      String(m.leakedTensors),
    ];
  });
}

const METHOD_HEADER = [
  'method',
  'trainable',
  'step ms (runs)',
  'tokens/s',
  'GFLOP/step',
  'GFLOP/s',
  '% of matMul',
  'peak / resident MiB',
  '× full time',
  '× full peak',
  '× PyTorch',
  'leaked tensors',
];

function backendSection(run: BenchRun, b: BackendResult): string {
  const lines: string[] = [];
  lines.push(`### ${b.backend}`);
  if (b.status !== 'ok') {
    lines.push('', `**${b.status}**: ${b.note}`);
    return lines.join('\n');
  }
  lines.push(
    '',
    `${b.description}; batch ${b.batch} × ${b.length} tokens${b.reduced ? ` — **reduced**: ${b.reduced}` : ''}; ` +
      `median of ${b.steps} steps after ${b.warmup} warm-up; load average ${b.loadAverageAtStart.map((x) => x.toFixed(1)).join(' ')} at start, ` +
      `${b.loadAverageAtEnd?.map((x) => x.toFixed(1)).join(' ')} at end.`,
    '',
    `Large matMul (${b.matMul?.n}³): **${f1(b.matMul?.gflops)} GFLOP/s** before the steps, ${f1(b.matMulAfter?.gflops)} after.`,
    '',
    table(METHOD_HEADER, methodRows(run, b)),
  );
  const inf = b.inference;
  if (inf) {
    const t =
      run.torch && run.torch.batch === b.batch && run.torch.length === b.length
        ? run.torch.inference
        : undefined;
    lines.push(
      '',
      `Inference (predict, ${inf.forwardGflop.toFixed(2)} GFLOP; base interleaved with each variant, ${inf.runs.unmerged.length} runs each):`,
      '',
      table(
        [
          'base ms',
          'LoRA unmerged ms',
          'LoRA merged ms',
          'unmerged overhead',
          'merged vs base',
          'base × PyTorch',
          'merged × PyTorch merged',
        ],
        [
          [
            ms(inf.baseMs),
            ms(inf.unmergedMs),
            ms(inf.mergedMs),
            pct(inf.unmergedOverhead),
            pct(inf.mergedVsBase),
            t ? `${f2(inf.baseMs / t.baseMs)}×` : '—',
            t ? `${f2(inf.mergedMs / t.mergedMs)}×` : '—',
          ],
        ],
      ),
    );
  } else if (b.inferenceNote) {
    lines.push('', `Inference: ${b.inferenceNote}`);
  }
  const profiled = b.methods.filter(
    (m) => m.topKernels && m.topKernels.length && (m.id === 'lora' || m.id === 'full'),
  );
  for (const m of profiled) {
    lines.push(
      '',
      `<details><summary>Top kernels, one ${m.label} step under tf.profile (${m.kernelsPerStep} kernels, ${ms(m.profiledStepMs)} ms summed)</summary>`,
      '',
      table(
        ['kernel', 'ms', 'calls', 'share'],
        m.topKernels!.map((k) => [
          k.name,
          ms(k.ms),
          String(k.count),
          `${((100 * k.ms) / (m.profiledStepMs || 1)).toFixed(0)}%`,
        ]),
      ),
      '',
      '</details>',
    );
  }
  return lines.join('\n');
}

interface Target {
  target: string;
  measured: string;
  met: boolean | null;
}

function method(b: BackendResult | undefined, id: string) {
  const m = b?.methods.find((x) => x.id === id);
  return m && m.status === 'ok' ? m : undefined;
}

export function evaluateTargets(run: BenchRun): Target[] {
  const out: Target[] = [];
  const get = (name: string) => run.backends.find((b) => b.backend === name && b.status === 'ok');
  const tfn = get('tensorflow');
  const cores = run.cores ?? 2;
  const torchLoad = (run.torch as { loadAverage?: number[] } | undefined)?.loadAverage?.[0];
  const loaded = (tfn?.loadAverageAtStart[0] ?? 0) > cores || (torchLoad ?? 0) > cores;
  for (const [id, limit] of [
    ['lora', 1.3],
    ['full', 1.5],
  ] as const) {
    const m = method(tfn, id);
    const t = tfn ? torchMs(run, tfn, id) : undefined;
    out.push({
      target: `${id === 'lora' ? 'LoRA' : 'full fine-tuning'} step on tensorflow ≤ ${limit}× PyTorch + PEFT`,
      measured:
        m && t
          ? `${(m.medianMs! / t).toFixed(2)}× (${ms(m.medianMs)} vs ${ms(t)} ms)${loaded ? `; NOT TRUSTWORTHY: load average ${tfn!.loadAverageAtStart[0].toFixed(1)} (tfjs) / ${torchLoad?.toFixed(1)} (PyTorch) on ${cores} cores` : ''}`
          : 'not measured (tensorflow or the PyTorch reference missing)',
      met: m && t && !loaded ? m.medianMs! / t <= limit : null,
    });
  }
  const wasm = get('wasm');
  const wl = method(wasm, 'lora');
  const threads = wasm?.wasmThreads ?? 1;
  for (const [count, limit] of [
    [1, 900],
    [2, 600],
  ] as const) {
    const here = wl && !wasm!.reduced && threads === count;
    out.push({
      target: `LoRA step on wasm ≤ ${limit / 1000} s (${count} thread${count === 1 ? '' : 's'})`,
      measured: here
        ? `${ms(wl.medianMs)} ms`
        : !wl
          ? 'not measured (no wasm LoRA step in this run)'
          : `not measured in this run (wasm ran with ${threads} thread${threads === 1 ? '' : 's'}; --wasm-threads=${count})`,
      met: here ? wl.medianMs! <= limit : null,
    });
  }
  out.push({
    target: "LoRA step on wasm at ≥ 70% of wasm's own matMul GFLOP/s",
    measured:
      wl && wasm!.matMul
        ? `${((100 * wl.gflops!) / wasm!.matMul.gflops).toFixed(0)}% (${f1(wl.gflops)} of ${f1(wasm!.matMul.gflops)})`
        : 'not measured',
    met: wl && wasm!.matMul ? wl.gflops! / wasm!.matMul.gflops >= 0.7 : null,
  });
  for (const b of run.backends.filter((x) => x.status === 'ok')) {
    const l = method(b, 'lora');
    const full = method(b, 'full');
    if (l && full) {
      out.push({
        target: `LoRA step time ≤ 0.6× full fine-tuning (${b.backend}${b.reduced ? ', reduced size' : ''})`,
        measured: `${(l.medianMs! / full.medianMs!).toFixed(2)}×`,
        met: l.medianMs! / full.medianMs! <= 0.6,
      });
      out.push({
        target: `LoRA peak tensor bytes ≤ 0.5× full fine-tuning (${b.backend}${b.reduced ? ', reduced size' : ''})`,
        measured: `${(l.peakBytes! / full.peakBytes!).toFixed(2)}× (${mib(l.peakBytes)} vs ${mib(full.peakBytes)} MiB)`,
        met: l.peakBytes! / full.peakBytes! <= 0.5,
      });
    }
    // The same comparison with both steps taking their gradients through minimizeReleasingEarly.
    const lEarly = method(b, 'lora-release-early');
    const fullEarly = method(b, 'full-release-early');
    if (lEarly && fullEarly) {
      out.push({
        target: `LoRA peak tensor bytes ≤ 0.5× full fine-tuning, both with minimizeReleasingEarly (${b.backend}${b.reduced ? ', reduced size' : ''})`,
        measured: `${(lEarly.peakBytes! / fullEarly.peakBytes!).toFixed(2)}× (${mib(lEarly.peakBytes)} vs ${mib(fullEarly.peakBytes)} MiB)`,
        met: lEarly.peakBytes! / fullEarly.peakBytes! <= 0.5,
      });
    }
    if (b.inference) {
      out.push({
        target: `merged LoRA inference within 3% of base (${b.backend})`,
        measured: pct(b.inference.mergedVsBase),
        met: Math.abs(b.inference.mergedVsBase) <= 0.03,
      });
      out.push({
        target: `unmerged LoRA inference overhead ≤ 10% (${b.backend})`,
        measured: pct(b.inference.unmergedOverhead),
        met: b.inference.unmergedOverhead <= 0.1,
      });
    }
  }
  return out;
}

function torchSection(run: BenchRun): string {
  const t = run.torch;
  if (!t) return `PyTorch reference: ${run.torchNote ?? 'none'}.`;
  const rows = Object.entries(t.methods).map(([id, m]) => [
    id,
    m.trainableParams.toLocaleString('en-US'),
    ms(m.medianMs),
  ]);
  return [
    `PyTorch ${t.torch} + PEFT ${t.peft}, ${t.threads} threads, batch ${t.batch} × ${t.length}, measured ${t.date} (${t.source}); ` +
      `matMul ${t.matMul.n}³ ${f1(t.matMul.gflops)} GFLOP/s; inference base ${ms(t.inference.baseMs)} ms, LoRA unmerged ${ms(t.inference.unmergedMs)} ms, merged ${ms(t.inference.mergedMs)} ms.`,
    '',
    table(['method', 'trainable', 'step ms'], rows),
  ].join('\n');
}

export function markdownReport(run: BenchRun): string {
  const targets = evaluateTargets(run);
  const mark = (m: boolean | null) => (m === null ? 'not measured' : m ? '**met**' : '**not met**');
  return [
    `# tfjs-peft benchmark — ${run.date}, ${run.machine}`,
    '',
    `Command: \`${run.command}\` · Node ${run.node} · load average ${run.loadAverage.start.map((x) => x.toFixed(1)).join(' ')} at start, ` +
      `${run.loadAverage.end.map((x) => x.toFixed(1)).join(' ')} at end (the machine is shared: compare ratios within this run, not absolute times across runs).`,
    '',
    'Model: the pre-trained Universal Sentence Encoder lite (`loadUniversalSentenceEncoderLite`, 2 pre-norm blocks, widths 256→512, ' +
      'feed-forward 1536) + a 2-class `classifier` head (`withClassifierHead`), Adam, cross-entropy; random token ids, full attention mask. ' +
      'GFLOP counts only matrix products, and only those a step needs (no weight gradient for a frozen weight; no input gradient below the ' +
      'lowest trainable weight); see `tools/bench/src/flops.ts`. Peak = `tf.profile(step).peakBytes` (most tensor bytes alive at once), ' +
      'resident = `tf.memory().numBytes` between steps (weights, optimizer state, batch).',
    '',
    '## Targets (issue 9)',
    '',
    table(
      ['target', 'measured', ''],
      targets.map((t) => [t.target, t.measured, mark(t.met)]),
    ),
    '',
    '## PyTorch + PEFT reference',
    '',
    torchSection(run),
    '',
    '## Per backend',
    '',
    run.backends.map((b) => backendSection(run, b)).join('\n\n'),
    '',
  ].join('\n');
}

/** The compact terminal table: one line per backend × method. */
export function terminalTable(run: BenchRun): string {
  const rows: string[][] = [];
  for (const b of run.backends) {
    if (b.status !== 'ok') {
      rows.push([b.backend, `${b.status}: ${b.note}`]);
      continue;
    }
    const size = `${b.batch}×${b.length}${b.reduced ? ' (reduced)' : ''}`;
    rows.push([b.backend, size, `matMul ${f1(b.matMul?.gflops)} GFLOP/s`]);
    for (const [i, r] of methodRows(run, b).entries()) {
      const m = b.methods[i];
      rows.push(m.status === 'ok' ? ['', '', ...r] : ['', '', `${m.label}: ${m.status} — ${m.note ?? ''}`]);
    }
    if (b.inference) {
      rows.push([
        '',
        '',
        `inference base ${ms(b.inference.baseMs)} ms · unmerged ${ms(b.inference.unmergedMs)} (${pct(b.inference.unmergedOverhead)}) · merged ${ms(b.inference.mergedMs)} (${pct(b.inference.mergedVsBase)})`,
      ]);
    }
  }
  const header = ['backend', 'size', ...METHOD_HEADER];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.filter((r) => r.length > 3).map((r) => (r[i] ?? '').length)),
  );
  const fmt = (r: string[]) =>
    r.length <= 3 ? r.join('  ') : r.map((c, i) => c.padEnd(widths[i])).join('  ');
  const targets = evaluateTargets(run)
    .map((t) => `  ${t.met === null ? '·' : t.met ? '✓' : '✗'} ${t.target}: ${t.measured}`)
    .join('\n');
  return [fmt(header), ...rows.map(fmt), '', 'Targets:', targets].join('\n');
}
