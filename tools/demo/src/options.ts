import { ALL_METHODS, type MethodId } from './methods';

export interface DemoOptions {
  backend?: string;
  trainSize: number;
  evalSize: number;
  maxLength: number;
  /** Default: maxLength × 8. */
  maxChars?: number;
  epochs: number;
  batchSize: number;
  methods: MethodId[];
  out: string;
  seed: number;
  quick: boolean;
  learningRates: Partial<Record<MethodId, number>>;
}

export const DEFAULTS = {
  trainSize: 512,
  evalSize: 400,
  maxLength: 64,
  epochs: 3,
  batchSize: 16,
  seed: 1234,
  out: 'demo-output',
  methods: [...ALL_METHODS],
};

/** --quick: about a minute, for CI smoke runs. */
export const QUICK = { trainSize: 64, evalSize: 64, maxLength: 32, epochs: 1, methods: ['linear-probe', 'lora'] as MethodId[] };

export const USAGE = `pnpm demo [options]
  --backend=<name>      tensorflow | wasm | cpu (default: best available)
  --train-size=<n>      balanced training subset, half ham half spam (default ${DEFAULTS.trainSize})
  --eval-size=<n>       cap on validation and test emails evaluated, class-stratified (default ${DEFAULTS.evalSize}; 0 = all)
  --max-length=<n>      tokens per email (default ${DEFAULTS.maxLength})
  --max-chars=<n>       characters kept of each cleaned email before tokenising (default 8 × max-length)
  --epochs=<n>          (default ${DEFAULTS.epochs})
  --batch-size=<n>      (default ${DEFAULTS.batchSize})
  --methods=<list>      comma-separated: ${ALL_METHODS.join(', ')} (default all)
  --lr-<method>=<x>     Adam learning rate of one method, e.g. --lr-lora=1e-3
  --out=<dir>           output folder (default ${DEFAULTS.out}/)
  --seed=<n>            split, subset and shuffling seed (default ${DEFAULTS.seed})
  --quick               tiny run for smoke tests: train ${QUICK.trainSize}, eval ${QUICK.evalSize}, ${QUICK.maxLength} tokens, ${QUICK.epochs} epoch, ${QUICK.methods.join(' + ')}`;

function positiveInt(name: string, value: string, allowZero = false): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new Error(`--${name} expects a ${allowZero ? 'non-negative' : 'positive'} integer, got "${value}"`);
  return n;
}

export function parseOptions(argv: readonly string[]): DemoOptions | 'help' {
  const given = new Map<string, string>();
  for (const arg of argv) {
    if (arg === '--') continue;
    if (arg === '--help' || arg === '-h') return 'help';
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`Unknown argument "${arg}"\n${USAGE}`);
    given.set(m[1], m[2] ?? 'true');
  }
  const quick = given.get('quick') === 'true';
  given.delete('quick');
  const base = quick ? { ...DEFAULTS, ...QUICK } : DEFAULTS;
  const options: DemoOptions = { ...base, methods: [...base.methods], quick, learningRates: {} };
  for (const [key, value] of given) {
    switch (key) {
      case 'backend': options.backend = value; break;
      case 'train-size': options.trainSize = positiveInt(key, value); break;
      case 'eval-size': options.evalSize = positiveInt(key, value, true); break;
      case 'max-length': options.maxLength = positiveInt(key, value); break;
      case 'max-chars': options.maxChars = positiveInt(key, value); break;
      case 'epochs': options.epochs = positiveInt(key, value); break;
      case 'batch-size': options.batchSize = positiveInt(key, value); break;
      case 'seed': options.seed = positiveInt(key, value, true); break;
      case 'out': options.out = value; break;
      case 'methods': {
        const list = value.split(',').map((s) => s.trim()).filter(Boolean);
        const bad = list.filter((m) => !(ALL_METHODS as readonly string[]).includes(m));
        if (bad.length || !list.length) throw new Error(`--methods: unknown ${bad.join(', ') || '(empty)'}; choose from ${ALL_METHODS.join(', ')}`);
        options.methods = list as MethodId[];
        break;
      }
      default: {
        const lr = /^lr-(.+)$/.exec(key);
        if (lr && (ALL_METHODS as readonly string[]).includes(lr[1])) {
          const x = Number(value);
          if (!(x > 0)) throw new Error(`--${key} expects a positive number, got "${value}"`);
          options.learningRates[lr[1] as MethodId] = x;
          break;
        }
        throw new Error(`Unknown option --${key}\n${USAGE}`);
      }
    }
  }
  return options;
}
