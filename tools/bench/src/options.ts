import { ALL_BACKENDS } from './backends';
import { DEFAULT_METHODS } from './methods';

export interface BackendPlan {
  batch: number;
  length: number;
  /** Why this backend runs at a reduced size, or null at the size. */
  reduced: string | null;
  steps: number;
  warmup: number;
  inferRuns: number;
  matMulN: number;
  matMulRuns: number;
}

export interface BenchOptions {
  backends: string[];
  methods: string[];
  steps?: number;
  quick: boolean;
  fullSize: boolean;
  inference: boolean;
  profile: boolean;
  printFlops: boolean;
  /** A torch_reference.py JSON to compare with; 'run' runs the script now (needs .venv-hf); 'none' skips. */
  torch?: string;
  out: string;
  /** Re-render this saved results JSON (no measuring). */
  report?: string;
  /** Also write results/latest.md. */
  latest: boolean;
  /** wasm threads (default: all cores, through @tfjs-peft/core's Node loader for the threaded build). */
  wasmThreads?: number;
}

export const USAGE = `pnpm bench [options]
  --backends=tensorflow,wasm,webgpu,cpu   backends to measure (default: all; an unavailable one is reported and skipped)
  --methods=full,lora,bitfit,ia3,adapters,prompt-tuning,prefix-tuning,…   (default: all, variants included;
                     a package that does not import is skipped with the reason)
  --steps=N          timed training steps per method (median reported; warm-up steps are extra)
  --quick            fewer steps and inference runs (a smoke run; figures are noisier)
  --full-size        run cpu and webgpu at batch 16 × 64 tokens too (slow: minutes per step on cpu)
  --no-inference     skip base / unmerged / merged LoRA inference latency
  --no-profile       skip the tf.profile kernel breakdown
  --print-flops      list every counted matrix product
  --torch=PATH|run|none  PyTorch + PEFT reference: a JSON written by tools/bench/torch_reference.py,
                     'run' to run it now with .venv-hf/bin/python (default: tools/bench/results/torch-latest.json when present)
  --report=FILE.json re-render a saved run's table and Markdown (no measuring)
  --out=DIR          results folder (default tools/bench/results)
  --no-latest        do not rewrite results/latest.md
  --wasm-threads=N   wasm threads (default: all cores, at most 8; 1 = the plain SIMD build)`;

/** The size (batch 16 × 64 tokens) where it runs in reasonable time; cpu and webgpu-on-software-GL reduced. */
export function planFor(backend: string, options: BenchOptions): BackendPlan {
  const quick = options.quick;
  const full = { batch: 16, length: 64, reduced: null };
  let plan: BackendPlan;
  switch (backend) {
    case 'tensorflow':
      plan = {
        ...full,
        steps: quick ? 3 : 10,
        warmup: 2,
        inferRuns: quick ? 6 : 20,
        matMulN: 2048,
        matMulRuns: quick ? 3 : 7,
      };
      break;
    case 'wasm':
      plan = {
        ...full,
        steps: quick ? 2 : 5,
        warmup: 1,
        inferRuns: quick ? 4 : 10,
        matMulN: 1024,
        matMulRuns: quick ? 3 : 5,
      };
      break;
    case 'webgpu':
      plan = {
        batch: 4,
        length: 32,
        reduced:
          'batch 4 × 32 tokens: WebGPU in Node runs on Mesa software GL here, ~50× slower than tfjs-node',
        steps: quick ? 2 : 3,
        warmup: 1,
        inferRuns: quick ? 3 : 6,
        matMulN: 512,
        matMulRuns: 3,
      };
      break;
    default:
      plan = {
        batch: 2,
        length: 16,
        reduced: 'batch 2 × 16 tokens: the plain-JS cpu backend takes ~40 s per full-size step',
        steps: quick ? 2 : 3,
        warmup: 1,
        inferRuns: quick ? 3 : 6,
        matMulN: 256,
        matMulRuns: 3,
      };
  }
  if (options.fullSize) Object.assign(plan, full);
  if (options.steps !== undefined) plan.steps = options.steps;
  return plan;
}

function list(value: string, allowed: readonly string[], what: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item))
      throw new Error(`unknown ${what} "${item}" (choose from ${allowed.join(', ')})`);
  }
  return items;
}

export function parseOptions(argv: string[]): BenchOptions | 'help' {
  const options: BenchOptions = {
    backends: [...ALL_BACKENDS],
    methods: [...DEFAULT_METHODS],
    quick: false,
    fullSize: false,
    inference: true,
    profile: true,
    printFlops: false,
    out: 'tools/bench/results',
    latest: true,
  };
  for (const arg of argv) {
    if (arg === '--') continue;
    const [key, value] = arg.includes('=')
      ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, ''];
    switch (key) {
      case '--help':
      case '-h':
        return 'help';
      case '--backends':
        options.backends = list(value, ALL_BACKENDS, 'backend');
        break;
      case '--methods':
        options.methods = list(value, DEFAULT_METHODS, 'method');
        break;
      case '--steps': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1)
          throw new Error(`--steps needs a positive integer, got "${value}"`);
        options.steps = n;
        break;
      }
      case '--wasm-threads': {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > 8)
          throw new Error(`--wasm-threads needs an integer from 1 to 8, got "${value}"`);
        options.wasmThreads = n;
        break;
      }
      case '--quick':
        options.quick = true;
        break;
      case '--full-size':
        options.fullSize = true;
        break;
      case '--no-inference':
        options.inference = false;
        break;
      case '--no-profile':
        options.profile = false;
        break;
      case '--print-flops':
        options.printFlops = true;
        break;
      case '--torch':
        options.torch = value;
        break;
      case '--report':
        options.report = value;
        break;
      case '--out':
        options.out = value;
        break;
      case '--no-latest':
        options.latest = false;
        break;
      default:
        throw new Error(`unknown option ${arg}\n${USAGE}`);
    }
  }
  return options;
}
