// Makes fixtures/lstm-fortunes-multitask: a plain tfjs-layers Embedding → LSTM → Dense(2, softmax)
// classifier pre-trained on two binary tasks over the same Debian fortunes, the task chosen by a
// task token read first (`[<task:A> | <task:B>, …words]`). The two tasks disagree on half of the
// texts, so without a task token the model cannot know which answer is wanted: the base of the
// prompt-tuning test (packages/peft-prompt/src/prompt-tuning-lstm.node.test.ts), where a learned
// virtual token takes the task token's place.
//
// Run from the repository root: pnpm --filter @tfjs-peft/fixtures-lstm start [-- --epochs=N --out=DIR]
// Seeded: no randomness outside the seeded initialisers and batch order.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { embeddingLookup } from '@tfjs-peft/core';
import {
  CATEGORIES,
  encode,
  FORTUNES_DIR,
  HELD_OUT_RULE,
  label,
  loadSplit,
  MAX_WORDS,
  PAD,
  rng,
  SPECIAL_TOKENS,
  TASK_TOKEN,
  TASKS,
  type TaskName,
  type Text,
} from './data';

const args = new Map(
  process.argv
    .slice(2)
    .filter((a) => a.startsWith('--'))
    .map((a) => {
      const [k, v] = a.slice(2).split('=');
      return [k, v ?? 'true'] as const;
    }),
);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const OUT = path.resolve(ROOT, args.get('out') ?? 'fixtures/lstm-fortunes-multitask');
const VOCAB = Number(args.get('vocab') ?? 1500);
const DIM = Number(args.get('dim') ?? 16);
const UNITS = Number(args.get('units') ?? 32);
const EPOCHS = Number(args.get('epochs') ?? 10);
const BATCH = 64;
const LR = Number(args.get('lr') ?? 0.01);
const SEED = 20261129;
/** tensorflow (tfjs-node, the default: 3× faster than cpu here) or cpu; the same code path. */
const BACKEND = args.get('backend') ?? 'tensorflow';

/** The vocabulary: special tokens, then the most frequent words of the training texts (ties by spelling). */
function vocabulary(train: readonly Text[]): string[] {
  const counts = new Map<string, number>();
  for (const t of train) for (const w of t.words) counts.set(w, (counts.get(w) ?? 0) + 1);
  const words = [...counts]
    .filter(([, n]) => n >= 2)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, VOCAB - SPECIAL_TOKENS.length)
    .map(([w]) => w);
  return [...SPECIAL_TOKENS, ...words];
}

function model(vocab: number): tfl.LayersModel {
  return tfl.sequential({
    name: 'lstm_fortunes_multitask',
    layers: [
      tfl.layers.embedding({
        name: 'embedding',
        inputDim: vocab,
        outputDim: DIM,
        maskZero: true,
        inputShape: [null],
        embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed: 1 }),
      }),
      tfl.layers.lstm({
        name: 'lstm',
        units: UNITS,
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }),
        recurrentInitializer: tfl.initializers.glorotUniform({ seed: 3 }),
      }),
      tfl.layers.dense({
        name: 'head',
        units: 2,
        activation: 'softmax',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }),
      }),
    ],
  });
}

/** Rows [task token?, …word ids], padded with 0 to the same length, and the labels of `task`. */
function rows(texts: readonly Text[], ids: Map<string, number>, task: TaskName | null) {
  const x = texts.map((t) => {
    const body = encode(t.words, ids);
    return task === null ? [...body, PAD] : [TASK_TOKEN[task], ...body];
  });
  return { x, y: task === null ? [] : texts.map((t) => label(task, t.category)) };
}

async function accuracy(
  m: tfl.LayersModel,
  texts: readonly Text[],
  ids: Map<string, number>,
  prompt: TaskName | null,
  task: TaskName,
) {
  const { x } = rows(texts, ids, prompt);
  const labels = texts.map((t) => label(task, t.category));
  const predicted = tf.tidy(() => tf.argMax(m.predict(tf.tensor2d(x, undefined, 'int32')) as tf.Tensor, 1));
  const values = await predicted.data();
  predicted.dispose();
  return labels.filter((l, i) => values[i] === l).length / labels.length;
}

async function main() {
  // The backend packages are dependencies of @tfjs-peft/test-utils, resolved from there (as tools/bench does).
  const requireFromTestUtils = createRequire(import.meta.resolve('@tfjs-peft/test-utils'));
  requireFromTestUtils(BACKEND === 'tensorflow' ? '@tensorflow/tfjs-node' : '@tensorflow/tfjs-backend-cpu');
  await tf.setBackend(BACKEND);
  const t0 = Date.now();
  const split = loadSplit();
  const tokens = vocabulary(split.train);
  const ids = new Map(tokens.map((w, i) => [w, i]));
  const base = model(tokens.length);

  // Every training text twice: once per task, with that task's token and label.
  const both = (['A', 'B'] as const).map((task) => rows(split.train, ids, task));
  const x = both.flatMap((r) => r.x);
  const y = both.flatMap((r) => r.y);
  const [embedding, lstm, head] = base.layers;
  const variables = base.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = tf.train.adam(LR);
  const random = rng(SEED);
  const log: string[] = [];
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const order = x.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    let total = 0;
    for (let start = 0; start < order.length; start += BATCH) {
      const batch = order.slice(start, start + BATCH);
      const xb = tf.tensor2d(
        batch.map((i) => x[i]),
        undefined,
        'int32',
      );
      const yb = tf.tidy(() =>
        tf.oneHot(
          tf.tensor1d(
            batch.map((i) => y[i]),
            'int32',
          ),
          2,
        ),
      );
      const mask = tf.notEqual(xb, 0);
      // A custom loop over the model's own layers: `fit` would differentiate the Embedding through
      // tfjs' stock gather gradient (UnsortedSegmentSum, very slow on the cpu backend);
      // peft-core's embeddingLookup computes the same lookup with a scatterND gradient.
      const loss = optimizer.minimize(
        () => {
          const vectors = embeddingLookup(embedding.weights[0].read() as tf.Tensor2D, xb);
          const state = lstm.apply(vectors, { mask }) as tf.Tensor;
          const p = head.apply(state) as tf.Tensor;
          return tf.neg(tf.mean(tf.sum(tf.mul(yb, tf.log(tf.add(p, 1e-7))), 1))) as tf.Scalar;
        },
        true,
        variables,
      ) as tf.Scalar;
      total += (await loss.data())[0] * batch.length;
      tf.dispose([xb, yb, mask, loss]);
    }
    const line =
      `epoch ${epoch + 1}: loss ${(total / order.length).toFixed(4)}; held-out A ${(await accuracy(base, split.heldOut, ids, 'A', 'A')).toFixed(3)}, ` +
      `B ${(await accuracy(base, split.heldOut, ids, 'B', 'B')).toFixed(3)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`;
    console.log(line);
    log.push(line);
  }
  optimizer.dispose();

  const measured: Record<string, number> = {};
  for (const task of ['A', 'B'] as const) {
    for (const prompt of ['A', 'B', null] as const) {
      for (const set of ['train', 'heldOut'] as const) {
        measured[`${set} ${task} with ${prompt === null ? 'no task token' : `<task:${prompt}>`}`] =
          await accuracy(base, split[set], ids, prompt, task);
      }
    }
  }
  console.log(measured);

  mkdirSync(OUT, { recursive: true });
  await base.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = tf.io.CompositeArrayBuffer.join(artifacts.weightData!);
      writeFileSync(path.join(OUT, 'weights.bin'), new Uint8Array(weightData));
      const modelJson = {
        format: 'layers-model',
        generatedBy: 'tools/fixtures-lstm/src/make.ts',
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs }],
      };
      writeFileSync(path.join(OUT, 'model.json'), JSON.stringify(modelJson) + '\n');
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  const counts = (texts: readonly Text[]) =>
    Object.fromEntries(CATEGORIES.map((c) => [c, texts.filter((t) => t.category === c).length]));
  const vocabJson = {
    tokens,
    pad: PAD,
    unknown: SPECIAL_TOKENS.indexOf('<unk>'),
    taskTokens: TASK_TOKEN,
    maxWords: MAX_WORDS,
    tokenizer:
      "lower-case, words = /[a-z']+/g, the first maxWords words, unknown words → <unk>, padded with 0 after the text",
    tasks: Object.fromEntries(
      Object.entries(TASKS).map(([k, t]) => [k, { name: t.name, positive: t.positive }]),
    ),
    categories: CATEGORIES,
    source: `${FORTUNES_DIR}/{${CATEGORIES.join(',')}} (Debian package fortunes)`,
    splitRule: HELD_OUT_RULE,
    fileCounts: Object.fromEntries(CATEGORIES.map((c, i) => [c, split.fileCounts[i]])),
    counts: { train: counts(split.train), heldOut: counts(split.heldOut) },
    /** Per category, positions in the file's list of texts (split on lines holding only %, whitespace collapsed, empty ones dropped). */
    split: Object.fromEntries(
      CATEGORIES.map((c) => [
        c,
        {
          train: split.train.filter((t) => t.category === c).map((t) => t.index),
          heldOut: split.heldOut.filter((t) => t.category === c).map((t) => t.index),
        },
      ]),
    ),
    training: {
      dim: DIM,
      units: UNITS,
      epochs: EPOCHS,
      batch: BATCH,
      lr: LR,
      seed: SEED,
      optimizer: 'adam',
      backend: tf.getBackend(),
    },
    accuracy: measured,
    log,
  };
  writeFileSync(path.join(OUT, 'vocab.json'), JSON.stringify(vocabJson, null, 1) + '\n');
  console.log(`wrote ${OUT} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

await main();
