// Measures ONE backend in this process (main.ts starts one worker per backend, so a backend's heap,
// threads or a crash never affect another's figures) and writes its results as JSON.
// Usage: node --conditions=@tfjs-peft/source --import tsx src/worker.ts '<WorkerRequest JSON>'
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { firstLine, useBackend, wasmThreadsInUse, type BenchBackend } from './backends';
import { countFlops } from './flops';
import { METHODS, LORA_OPTIONS, type PreparedMethod } from './methods';
import { useLiteClassifierFactory, type ClassifierFactory } from './model-source';
import type { BackendResult, InferenceResult, KernelTime, MethodResult, WorkerRequest } from './types';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (line: string) => process.stderr.write(`${line}\n`);

interface Batch {
  ids: tf.Tensor2D;
  mask: tf.Tensor2D;
  labels: tf.Tensor2D;
}

function makeBatch(batch: number, length: number): Batch {
  return tf.tidy(() => ({
    ids: tf.cast(tf.mul(tf.randomUniform([batch, length], 0, 1, 'float32', 7), 8000), 'int32') as tf.Tensor2D,
    mask: tf.ones([batch, length]) as tf.Tensor2D,
    labels: tf.cast(
      tf.oneHot(
        tf.tensor1d(
          Array.from({ length: batch }, (_, i) => i % 2),
          'int32',
        ),
        2,
      ),
      'float32',
    ) as tf.Tensor2D,
  }));
}

/** Cross-entropy of the classifier's softmax output (the head ends in softmax, as withClassifierHead builds it). */
function crossEntropy(labels: tf.Tensor, probs: tf.Tensor): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.log(tf.add(probs, 1e-7))), -1))) as tf.Scalar;
}

async function timeAsync(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

function topKernels(kernels: { name: string; kernelTimeMs: unknown }[], n: number): KernelTime[] {
  const byName = new Map<string, KernelTime>();
  for (const k of kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const entry = byName.get(k.name) ?? { name: k.name, ms: 0, count: 0 };
    entry.ms += ms;
    entry.count += 1;
    byName.set(k.name, entry);
  }
  return [...byName.values()].sort((a, b) => b.ms - a.ms).slice(0, n);
}

async function matMulGflops(
  n: number,
  reps: number,
): Promise<{ n: number; ms: number; gflops: number; runs: number[] }> {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1);
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  const run = async () => {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  };
  await run();
  await run();
  const runs: number[] = [];
  for (let i = 0; i < reps; i++) runs.push(await timeAsync(run));
  tf.dispose([a, b]);
  const ms = median(runs);
  return { n, ms, gflops: (2 * n * n * n) / (ms * 1e6), runs };
}

async function benchMethod(
  req: WorkerRequest,
  id: string,
  models: ClassifierFactory,
  data: Batch,
): Promise<MethodResult> {
  const spec = METHODS.find((m) => m.id === id);
  if (!spec) return { id, label: id, status: 'skipped', note: 'unknown method' };
  let prepare: (model: tfl.LayersModel) => PreparedMethod;
  try {
    prepare = await spec.load();
  } catch (error) {
    return { id, label: spec.label, status: 'skipped', note: `package does not import: ${firstLine(error)}` };
  }
  const base = models.make();
  let prepared: PreparedMethod;
  try {
    prepared = prepare(base);
  } catch (error) {
    base.dispose();
    return { id, label: spec.label, status: 'skipped', note: `could not be applied: ${firstLine(error)}` };
  }
  const { model, variables } = prepared;
  const flops = countFlops(model, req.batch, req.length);
  if (req.printFlops)
    for (const p of flops.products)
      log(`  ${id} ${p.layer} ${p.weight} ${p.mkn.join('×')} fwd ${p.forward} bwd ${p.backward}`);
  if (req.flopsOnly) {
    base.dispose();
    log(
      `[bench] ${id}: step ${(flops.step / 1e9).toFixed(2)} GFLOP, forward ${(flops.forward / 1e9).toFixed(2)} GFLOP`,
    );
    return {
      id,
      label: spec.label,
      status: 'skipped',
      note: 'flops only',
      stepGflop: flops.step / 1e9,
      trainableParams: prepared.trainableParams,
    };
  }
  const { configureFrozenDense, fusedAdam, FusedAdamOptimizer, releaseEarly } = await import(
    '@tfjs-peft/core'
  );
  const previousFrozenDense = configureFrozenDense(
    spec.frozenDense ?? { cacheTransposes: 'auto', untransposedBackward: 'auto' },
  );
  const chosen: tf.Optimizer =
    spec.optimizer === 'fused-adam'
      ? fusedAdam(1e-4)
      : spec.optimizer === 'fused-adam-sparse'
        ? new FusedAdamOptimizer({ learningRate: 1e-4, sparseEmbeddings: true })
        : tf.train.adam(1e-4);
  const optimizer = spec.gradients === 'release-early' ? releaseEarly(chosen) : chosen;
  const lossOf = () =>
    crossEntropy(data.labels, model.apply([data.ids, data.mask], { training: true }) as tf.Tensor);
  const step = async () => {
    const loss = optimizer.minimize(lossOf, true, variables) as tf.Scalar;
    await loss.data();
    loss.dispose();
  };
  const result: MethodResult = {
    id,
    label: spec.label,
    status: 'ok',
    trainableParams: prepared.trainableParams,
  };
  try {
    for (let i = 0; i < req.warmup; i++) await step();
    const tensorsBefore = tf.memory().numTensors;
    const runs: number[] = [];
    for (let i = 0; i < req.steps; i++) runs.push(await timeAsync(step));
    const leaked = tf.memory().numTensors - tensorsBefore;
    const residentBytes = tf.memory().numBytes;
    const profile = await tf.profile(async () => {
      await step();
    });
    const ms = median(runs);
    Object.assign(result, {
      runs,
      medianMs: ms,
      tokensPerS: (req.batch * req.length) / (ms / 1000),
      stepGflop: flops.step / 1e9,
      gflops: flops.step / (ms * 1e6),
      residentBytes,
      peakBytes: profile.peakBytes,
      leakedTensors: leaked,
      kernelsPerStep: profile.kernels.length,
      topKernels: req.profile ? topKernels(profile.kernels, 10) : undefined,
      profiledStepMs: profile.kernels.reduce(
        (s, k) => s + (typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0),
        0,
      ),
    });
  } catch (error) {
    result.status = 'failed';
    result.note = firstLine(error);
  } finally {
    optimizer.dispose();
    configureFrozenDense(previousFrozenDense);
    try {
      if (model !== base) model.dispose();
    } catch {
      /* the adapted graph shares layers with base; disposing base below releases them */
    }
    try {
      base.dispose();
    } catch {
      /* already disposed through the adapted graph */
    }
  }
  log(
    `[bench] ${req.backend} ${id}: ${result.status === 'ok' ? `${result.medianMs!.toFixed(0)} ms (runs ${result.runs!.map((r) => r.toFixed(0)).join('/')})` : `${result.status}: ${result.note}`}`,
  );
  return result;
}

/** Inference latency of the base model, LoRA unmerged, and LoRA merged, interleaved round by round with a separate base model. */
async function benchInference(
  req: WorkerRequest,
  models: ClassifierFactory,
  data: Batch,
): Promise<InferenceResult> {
  const { getPeftModel } = await import('@tfjs-peft/core');
  const { LoraConfig } = await import('@tfjs-peft/lora');
  const baseModel = models.make();
  const loraBase = models.make();
  const peft = getPeftModel(loraBase, new LoraConfig(LORA_OPTIONS));
  // Non-zero B (a trained adapter), so merged weights really differ from the base.
  for (const v of peft.trainableVariables)
    if (v.name.includes('lora_B')) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.01)));
  const predict = (model: tfl.LayersModel) => async () => {
    const out = model.predict([data.ids, data.mask]) as tf.Tensor;
    await out.data();
    out.dispose();
  };
  const runBase = predict(baseModel);
  const runLora = predict(peft.model);
  const pairs = async (other: () => Promise<void>) => {
    for (let i = 0; i < req.warmup; i++) {
      await runBase();
      await other();
    }
    const b: number[] = [];
    const o: number[] = [];
    for (let i = 0; i < req.inferRuns; i++) {
      // Alternate which goes first so a drift in machine load hits both equally.
      if (i % 2 === 0) {
        b.push(await timeAsync(runBase));
        o.push(await timeAsync(other));
      } else {
        o.push(await timeAsync(other));
        b.push(await timeAsync(runBase));
      }
    }
    return { b, o };
  };
  const unmerged = await pairs(runLora);
  await peft.mergeAdapter();
  const merged = await pairs(runLora);
  peft.unmergeAdapter();
  const forwardFlops = countFlops(baseModel, req.batch, req.length).forward;
  const result: InferenceResult = {
    forwardGflop: forwardFlops / 1e9,
    baseMs: median([...unmerged.b, ...merged.b]),
    unmergedMs: median(unmerged.o),
    mergedMs: median(merged.o),
    unmergedOverhead: median(unmerged.o) / median(unmerged.b) - 1,
    mergedVsBase: median(merged.o) / median(merged.b) - 1,
    runs: { baseWithUnmerged: unmerged.b, unmerged: unmerged.o, baseWithMerged: merged.b, merged: merged.o },
  };
  peft.model.dispose();
  try {
    loraBase.dispose();
  } catch {
    /* shared */
  }
  baseModel.dispose();
  log(
    `[bench] ${req.backend} inference: base ${result.baseMs.toFixed(1)} ms, LoRA unmerged ${result.unmergedMs.toFixed(1)} ms, merged ${result.mergedMs.toFixed(1)} ms`,
  );
  return result;
}

async function main(): Promise<void> {
  const req = JSON.parse(process.argv[2]) as WorkerRequest;
  const started = new Date().toISOString();
  const result: BackendResult = {
    backend: req.backend,
    description: req.backend,
    status: 'ok',
    batch: req.batch,
    length: req.length,
    reduced: req.reduced,
    steps: req.steps,
    warmup: req.warmup,
    started,
    loadAverageAtStart: os.loadavg(),
    methods: [],
  };
  try {
    result.description = await useBackend(req.backend as BenchBackend, req.wasmThreads);
    if (wasmThreadsInUse !== null) result.wasmThreads = wasmThreadsInUse;
  } catch (error) {
    result.status = 'unavailable';
    result.note = firstLine(error);
    await writeFile(req.out, JSON.stringify(result, null, 2));
    log(`[bench] ${req.backend} unavailable: ${result.note}`);
    return;
  }
  log(
    `[bench] ${result.description}: batch ${req.batch} × ${req.length} tokens${req.reduced ? ' (reduced)' : ''}`,
  );
  const models = await useLiteClassifierFactory();
  if (models.source === 'random')
    result.description += '; USE-lite shapes with random weights (TFJS_PEFT_BENCH_WEIGHTS=random)';
  if (!req.flopsOnly) {
    result.matMul = await matMulGflops(req.matMulN, req.matMulRuns);
    log(`[bench] ${req.backend} matMul ${req.matMulN}³: ${result.matMul.gflops.toFixed(1)} GFLOP/s`);
  }
  const data = makeBatch(req.batch, req.length);
  if (req.flopsOnly) {
    for (const id of req.methods) result.methods.push(await benchMethod(req, id, models, data));
    await writeFile(req.out, JSON.stringify(result, null, 2));
    return;
  }
  for (const id of req.methods) result.methods.push(await benchMethod(req, id, models, data));
  if (req.inference) {
    try {
      result.inference = await benchInference(req, models, data);
    } catch (error) {
      result.inferenceNote = firstLine(error);
      log(`[bench] ${req.backend} inference failed: ${result.inferenceNote}`);
    }
  }
  // Same run, after the steps: the limit again, so a load change during the run shows.
  result.matMulAfter = await matMulGflops(req.matMulN, req.matMulRuns);
  tf.dispose([data.ids, data.mask, data.labels]);
  result.loadAverageAtEnd = os.loadavg();
  result.finished = new Date().toISOString();
  await writeFile(req.out, JSON.stringify(result, null, 2));
}

main().then(
  () => process.exit(0),
  (error) => {
    log(`[bench] worker failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
