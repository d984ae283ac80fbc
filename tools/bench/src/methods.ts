// The fine-tuning methods the bench times. Each turns a FRESH classifier model into the model to
// train and its trainable variables, exactly as a user would (getPeftModel + the package's config).
// Method packages are imported dynamically: one that does not import cleanly (work in progress) is
// skipped with the reason, the others still run.
import type * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel, type FrozenDenseOptions, type PeftConfig, type PeftModel } from '@tfjs-peft/core';

export interface PreparedMethod {
  model: tfl.LayersModel;
  variables: tf.Variable[];
  trainableParams: number;
  peft?: PeftModel;
}

export interface MethodSpec {
  id: string;
  label: string;
  /** Loads the method's package; throws when it does not import. */
  load(): Promise<(model: tfl.LayersModel) => PreparedMethod>;
  /** A variant row: frozenDense settings while it runs (default: the library's, cacheTransposes 'auto'). */
  frozenDense?: FrozenDenseOptions;
  /**
   * A variant row: the optimizer (default tf.train.adam); `'fused-adam-sparse'` is fusedAdam with
   * `sparseEmbeddings` (only the looked-up rows of the embedding table change, LazyAdam-style).
   */
  optimizer?: 'adam' | 'fused-adam' | 'fused-adam-sparse';
  /**
   * A variant row: how the step's gradients are taken — `'stock'` (default) optimizer.minimize, i.e.
   * tf.variableGrads; `'release-early'` the optimizer wrapped by @tfjs-peft/core's releaseEarly
   * (minimizeReleasingEarly: same gradients, tensors released as soon as the backward pass is done
   * with them).
   */
  gradients?: 'stock' | 'release-early';
}

export const LORA_OPTIONS = {
  r: 8,
  loraAlpha: 16,
  targetModules: ['query', 'value'],
  modulesToSave: ['classifier'],
};

/**
 * Prompt methods as tools/demo applies them to USE lite (its PROMPT_TUNING_OPTIONS and
 * PREFIX_TUNING_OPTIONS), so bench and demo time the same thing: 20 virtual tokens, the task head
 * trained beside them. The adapted model takes the same [token ids, attention mask] batch: the
 * package extends the mask for the virtual tokens (prompt tuning) or the prefix (prefix tuning).
 */
export const PROMPT_TUNING_OPTIONS = {
  numVirtualTokens: 20,
  promptTuningInit: 'sampleVocab' as const,
  modulesToSave: ['classifier'],
};
export const PREFIX_TUNING_OPTIONS = { numVirtualTokens: 20, modulesToSave: ['classifier'] };

function fromPeft(peft: PeftModel): PreparedMethod {
  const variables = peft.trainableVariables;
  return { model: peft.model, variables, trainableParams: variables.reduce((s, v) => s + v.size, 0), peft };
}

// loadPackage is a literal import() per package (not import(name)), so a bundler compiles every
// method package into the GPU machine's self-contained worker (../device/build.mjs).
function peftMethod(
  makeConfig: (pkg: Record<string, unknown>) => PeftConfig,
  loadPackage: () => Promise<unknown>,
) {
  return async () => {
    const pkg = (await loadPackage()) as Record<string, unknown>;
    return (model: tfl.LayersModel) => fromPeft(getPeftModel(model, makeConfig(pkg)));
  };
}

type Ctor = new (options: object) => PeftConfig;

function fullFineTuning(model: tfl.LayersModel): PreparedMethod {
  for (const layer of model.layers) layer.trainable = true;
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  return { model, variables, trainableParams: variables.reduce((s, v) => s + v.size, 0) };
}

export const METHODS: MethodSpec[] = [
  {
    id: 'full',
    label: 'full fine-tuning',
    load: async () => fullFineTuning,
  },
  {
    id: 'lora',
    label: 'LoRA r8 q,v (+head)',
    load: peftMethod(
      (pkg) => new (pkg.LoraConfig as Ctor)(LORA_OPTIONS),
      () => import('@tfjs-peft/lora'),
    ),
  },
  {
    id: 'bitfit',
    label: 'BitFit all biases (+head)',
    load: peftMethod(
      (pkg) => new (pkg.BitFitConfig as Ctor)({ modulesToSave: ['classifier'] }),
      () => import('@tfjs-peft/bitfit'),
    ),
  },
  {
    id: 'ia3',
    label: 'IA³ k,v,ffn-out (+head)',
    load: peftMethod(
      (pkg) =>
        new (pkg.IA3Config as Ctor)({
          targetModules: ['key', 'value', 'ffn/output'],
          feedforwardModules: ['ffn/output'],
          modulesToSave: ['classifier'],
        }),
      () => import('@tfjs-peft/ia3'),
    ),
  },
  {
    id: 'adapters',
    label: 'Houlsby adapters /16 (+head)',
    load: peftMethod(
      (pkg) =>
        new (pkg.BottleneckConfig as Ctor)({
          placement: 'houlsby',
          reductionFactor: 16,
          modulesToSave: ['classifier'],
        }),
      () => import('@tfjs-peft/adapters'),
    ),
  },
  {
    id: 'prompt-tuning',
    label: 'prompt tuning, 20 virtual tokens (+head)',
    load: peftMethod(
      (pkg) => new (pkg.PromptTuningConfig as Ctor)(PROMPT_TUNING_OPTIONS),
      () => import('@tfjs-peft/prompt'),
    ),
  },
  {
    id: 'prefix-tuning',
    label: 'prefix tuning, 20 virtual tokens (+head)',
    load: peftMethod(
      (pkg) => new (pkg.PrefixTuningConfig as Ctor)(PREFIX_TUNING_OPTIONS),
      () => import('@tfjs-peft/prompt'),
    ),
  },
  {
    id: 'full-fused-adam',
    label: 'full fine-tuning, fusedAdam',
    optimizer: 'fused-adam',
    load: async () => fullFineTuning,
  },
  {
    id: 'full-sparse-embeddings',
    label: 'full fine-tuning, fusedAdam sparseEmbeddings',
    optimizer: 'fused-adam-sparse',
    load: async () => fullFineTuning,
  },
  {
    id: 'full-release-early',
    label: 'full fine-tuning, minimizeReleasingEarly',
    gradients: 'release-early',
    load: async () => fullFineTuning,
  },
  {
    id: 'lora-release-early',
    label: 'LoRA r8 q,v (+head), minimizeReleasingEarly',
    gradients: 'release-early',
    load: peftMethod(
      (pkg) => new (pkg.LoraConfig as Ctor)(LORA_OPTIONS),
      () => import('@tfjs-peft/lora'),
    ),
  },
  {
    id: 'lora-fused-adam',
    label: 'LoRA r8 q,v (+head), fusedAdam',
    optimizer: 'fused-adam',
    load: peftMethod(
      (pkg) => new (pkg.LoraConfig as Ctor)(LORA_OPTIONS),
      () => import('@tfjs-peft/lora'),
    ),
  },
  {
    // The frozen backward product as it was before the cached transposes: matMul(dy, W, false, true).
    id: 'lora-transposed-backward',
    label: 'LoRA r8 q,v (+head), dy·Wᵀ as a transposed matMul',
    frozenDense: { cacheTransposes: 'never', untransposedBackward: false },
    load: peftMethod(
      (pkg) => new (pkg.LoraConfig as Ctor)(LORA_OPTIONS),
      () => import('@tfjs-peft/lora'),
    ),
  },
  {
    id: 'lora-uncached-transposes',
    label: 'LoRA r8 q,v (+head), Wᵀ taken every step (not cached)',
    frozenDense: { cacheTransposes: 'never', untransposedBackward: true },
    load: peftMethod(
      (pkg) => new (pkg.LoraConfig as Ctor)(LORA_OPTIONS),
      () => import('@tfjs-peft/lora'),
    ),
  },
];

export const DEFAULT_METHODS = METHODS.map((m) => m.id);
