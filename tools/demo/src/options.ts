import { ALL_METHODS, type MethodId } from './methods';
import { TASK_IDS, TASKS, type TaskId } from './tasks';

export interface DemoOptions {
  task: TaskId;
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
  /** Evaluate the validation set after training too (nothing is selected on it in a run; off by default). */
  evalValidation: boolean;
  learningRates: Partial<Record<MethodId, number>>;
}

/** Task-independent defaults; train size, eval size, tokens and epochs come from the task (tasks.ts). */
export const DEFAULTS = {
  task: 'spam' as TaskId,
  batchSize: 16,
  seed: 1234,
  out: 'demo-output',
  methods: [...ALL_METHODS],
};

/** --quick: about a minute, for CI smoke runs: every available method, on the task's `quick` sizes. */
export const QUICK = { methods: [...ALL_METHODS] };

const spam = TASKS.spam;

export const USAGE = `pnpm demo [options]
  --task=<name>         ${TASK_IDS.map((t) => `${t} (${TASKS[t].title})`).join(' | ')} (default ${DEFAULTS.task})
  --backend=<name>      tensorflow | wasm | cpu (default: best available)
  --train-size=<n>      balanced training subset, the same number per class (default spam ${spam.defaults.trainSize}, fortunes ${TASKS.fortunes.defaults.trainSize})
  --eval-validation     also evaluate the validation set after training (off: no choice is made on it in a run)
  --eval-size=<n>       cap on validation and test examples evaluated, class-stratified (default spam ${spam.defaults.evalSize}, fortunes ${TASKS.fortunes.defaults.evalSize}; 0 = all)
  --max-length=<n>      tokens per example (default spam ${spam.defaults.maxLength}, fortunes ${TASKS.fortunes.defaults.maxLength})
  --max-chars=<n>       characters kept of each cleaned text before tokenising (default 8 × max-length)
  --epochs=<n>          (default ${spam.defaults.epochs})
  --batch-size=<n>      (default ${DEFAULTS.batchSize})
  --methods=<list>      comma-separated: ${ALL_METHODS.join(', ')} (default all)
  --lr-<method>=<x>     Adam learning rate of one method, e.g. --lr-lora=1e-3
  --out=<dir>           output folder (default ${DEFAULTS.out}/)
  --seed=<n>            split, subset and shuffling seed (default ${DEFAULTS.seed})
  --quick               tiny run for smoke tests (CI): every method, spam: train ${spam.quick.trainSize}, eval ${spam.quick.evalSize}, ${spam.quick.maxLength} tokens, ${spam.quick.epochs} epoch`;

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
  const task = (given.get('task') ?? DEFAULTS.task) as TaskId;
  if (!TASK_IDS.includes(task)) throw new Error(`--task: unknown "${task}"; choose from ${TASK_IDS.join(', ')}`);
  given.delete('task');
  const base = { ...DEFAULTS, ...(quick ? TASKS[task].quick : TASKS[task].defaults), ...(quick ? QUICK : {}), task };
  const options: DemoOptions = { ...base, methods: [...base.methods], quick, evalValidation: false, learningRates: {} };
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
      case 'eval-validation': options.evalValidation = value !== 'false'; break;
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
