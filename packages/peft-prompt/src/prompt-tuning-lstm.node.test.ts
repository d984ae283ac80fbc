// Prompt tuning on a plain tfjs-layers text classifier (Embedding → LSTM → Dense) on real text:
// Debian fortunes (apt package `fortunes`, /usr/share/games/fortunes). The base is first trained
// here on one task (computers vs people), then frozen; prompt tuning (virtual tokens + a trained copy
// of the head, as PEFT does for sequence classification) adapts it to another (science vs politics
// by default, LSTM_TASK=a,b for another pair). Everything is seeded: the data split, the
// initialisers, the order of batches (no shuffling in fit) and the prompt initialisation ('text').
//
// NOT PASSING YET, hence opt-in (TFJS_PEFT_LSTM_EXPERIMENT=1): the base reaches 0.805 held-out on its
// own task, but prompt tuning moves held-out accuracy on the second task by at most a few points
// (measured numbers in docs/guides/prompt-methods.md). The LSTM_* variables below were the knobs of
// those runs.
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { embeddingLookup, getPeftModel } from '@tfjs-peft/core';
import { describeEachBackend, expectWeightsBitIdentical, snapshotWeights } from '@tfjs-peft/test-utils';
import { lstmClassifier } from './__tests__/models';
import { PromptTuningConfig } from './index';

const DIR = '/usr/share/games/fortunes';
const PRETRAIN = ['computers', 'people'];
const TASK = (process.env.LSTM_TASK ?? 'science,politics').split(',');
const MAX_LENGTH = Number(process.env.LSTM_MAX_LENGTH ?? 16);
const VOCAB = Number(process.env.LSTM_VOCAB ?? 2000);
const DIM = Number(process.env.LSTM_DIM ?? 16);
const UNITS = Number(process.env.LSTM_UNITS ?? 16);
const PRETRAIN_PER_CLASS = Number(process.env.LSTM_PRETRAIN_PER_CLASS ?? 500);
const PRETRAIN_EPOCHS = Number(process.env.LSTM_PRETRAIN_EPOCHS ?? 4);
const TRAIN_PER_CLASS = Number(process.env.LSTM_TRAIN_PER_CLASS ?? 250);
const TEST_PER_CLASS = 100;
const EPOCHS = Number(process.env.LSTM_EPOCHS ?? 8);
const TOKENS = Number(process.env.LSTM_TOKENS ?? 8);
const BATCH = 50;
const LR = Number(process.env.LSTM_LR ?? 0.02);

function readFortunes(category: string): string[] {
  return readFileSync(`${DIR}/${category}`, 'latin1')
    .split(/\n%\n/)
    .map((t) => t.replace(/\s+/g, ' ').trim())
    .filter((t) => t.length > 0);
}

const words = (t: string) => t.toLowerCase().match(/[a-z']+/g) ?? [];

/** A seeded shuffle (mulberry32) so the split and the numbers are reproducible. */
function shuffle<T>(xs: readonly T[], seed: number): T[] {
  let a = seed;
  const rand = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

interface Row {
  text: string;
  label: number;
}

/** The "pre-trained" vocabulary: the most frequent words of the pre-training texts. 0 = padding, 1 = unknown. */
function vocabulary(rows: readonly Row[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { text } of rows) for (const w of words(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  return new Map(
    [...counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, VOCAB - 2)
      .map(([w], i) => [w, i + 2]),
  );
}

function encoder(vocab: Map<string, number>) {
  return (text: string) => {
    const ids = words(text)
      .slice(0, MAX_LENGTH)
      .map((w) => vocab.get(w) ?? 1);
    return [...ids, ...new Array<number>(MAX_LENGTH - ids.length).fill(0)];
  };
}

function split(categories: readonly string[], train: number, test: number, seed: number) {
  const perClass = categories.map((c) => shuffle(readFortunes(c), seed).slice(0, train + test));
  return {
    train: shuffle(
      perClass.flatMap((xs, label) => xs.slice(0, train).map((text) => ({ text, label }))),
      seed + 1,
    ),
    test: perClass.flatMap((xs, label) => xs.slice(train).map((text) => ({ text, label }))),
  };
}

function tensors(rows: readonly Row[], encode: (text: string) => number[]) {
  return {
    x: tf.tensor2d(
      rows.map((r) => encode(r.text)),
      [rows.length, MAX_LENGTH],
      'int32',
    ),
    y: tf.tidy(() =>
      tf.oneHot(
        tf.tensor1d(
          rows.map((r) => r.label),
          'int32',
        ),
        2,
      ),
    ),
    labels: rows.map((r) => r.label),
  };
}

async function accuracy(model: tfl.LayersModel, x: tf.Tensor, labels: number[]): Promise<number> {
  const predicted = tf.tidy(() => tf.argMax(model.predict(x, { batchSize: 200 }) as tf.Tensor, 1));
  const values = await predicted.data();
  predicted.dispose();
  return labels.filter((l, i) => values[i] === l).length / labels.length;
}

/**
 * Pre-training of the plain model, every weight trained. A custom loop over the model's own layers:
 * `fit` would differentiate the Embedding through tfjs' stock `tf.gather` gradient, whose
 * UnsortedSegmentSum costs O(vocabulary · tokens · width) per step on the cpu backend (15 s a batch
 * here); peft-core's `embeddingLookup` computes the same lookup with a scatterND gradient.
 */
async function pretrain(model: tfl.LayersModel, x: tf.Tensor2D, y: tf.Tensor2D, epochs: number, lr: number) {
  const [embedding, lstm, head] = model.layers;
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = tf.train.adam(lr);
  const rows = x.shape[0];
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let start = 0; start < rows; start += BATCH) {
      const size = Math.min(BATCH, rows - start);
      const ids = tf.slice(x, [start, 0], [size, -1]);
      const labels = tf.slice(y, [start, 0], [size, -1]);
      const mask = tf.notEqual(ids, 0);
      const loss = optimizer.minimize(
        () => {
          const vectors = embeddingLookup(embedding.weights[0].read() as tf.Tensor2D, ids);
          const state = lstm.apply(vectors, { mask }) as tf.Tensor;
          const probabilities = head.apply(state) as tf.Tensor;
          return tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.log(tf.add(probabilities, 1e-7))), 1))) as tf.Scalar;
        },
        true,
        variables,
      );
      tf.dispose([ids, labels, mask, loss as tf.Scalar]);
    }
  }
  optimizer.dispose();
}

async function fit(model: tfl.LayersModel, x: tf.Tensor, y: tf.Tensor, epochs: number, lr: number) {
  const optimizer = tf.train.adam(lr);
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  // No shuffling: the rows are shuffled once, seeded, so every run sees the same batches.
  await model.fit(x, y, { epochs, batchSize: BATCH, shuffle: false, verbose: 0 });
  optimizer.dispose();
}

const available =
  process.env.TFJS_PEFT_LSTM_EXPERIMENT === '1' &&
  [...PRETRAIN, ...TASK].every((c) => existsSync(`${DIR}/${c}`));
(available ? describeEachBackend : describe.skip)(
  'Prompt tuning a pre-trained Embedding → LSTM classifier on Debian fortunes',
  () => {
    it(`pre-trained on computers vs people, prompt-tuned on ${TASK.join(' vs ')}: held-out accuracy rises, base bit-identical`, async () => {
      const first = split(PRETRAIN, PRETRAIN_PER_CLASS, TEST_PER_CLASS, 11);
      const task = split(TASK, TRAIN_PER_CLASS, TEST_PER_CLASS, 3);
      const vocab = vocabulary(first.train);
      const encode = encoder(vocab);
      const a = { train: tensors(first.train, encode), test: tensors(first.test, encode) };
      const b = { train: tensors(task.train, encode), test: tensors(task.test, encode) };
      const t0 = Date.now();

      // 1. The base: a plain tfjs-layers classifier trained on the first task.
      const base = lstmClassifier(VOCAB, DIM, UNITS, 2, 7);
      await pretrain(base, a.train.x as tf.Tensor2D, a.train.y as tf.Tensor2D, PRETRAIN_EPOCHS, 0.01);
      const pretrainAccuracy = await accuracy(base, a.test.x, a.test.labels);
      const t1 = Date.now();
      const before = await snapshotWeights(base);

      // 2. Prompt tuning on the second task: virtual tokens initialised from words, and the head.
      const peft = getPeftModel(
        base,
        new PromptTuningConfig({
          numVirtualTokens: TOKENS,
          promptTuningInit: 'text',
          promptTuningInitText: 'science physics politics government',
          tokenizer: (text) => encode(text).filter((id) => id !== 0),
          modulesToSave: ['head'],
        }),
      );
      const lines: string[] = [];
      peft.printTrainableParameters((l) => lines.push(l));
      const accuracyBefore = await accuracy(peft.model, b.test.x, b.test.labels);
      await fit(peft.model, b.train.x, b.train.y, EPOCHS, LR);
      const accuracyAfter = await accuracy(peft.model, b.test.x, b.test.labels);
      const trainAccuracy = await accuracy(peft.model, b.train.x, b.train.labels);
      const t2 = Date.now();
      console.log(
        `[lstm-fortunes ${tf.getBackend()}] base: ${PRETRAIN.join(' vs ')} held-out ${pretrainAccuracy.toFixed(3)} ` +
          `(${((t1 - t0) / 1000).toFixed(1)} s); prompt tuning ${TASK.join(' vs ')}: ${lines[0]}; held-out ` +
          `${accuracyBefore.toFixed(3)} → ${accuracyAfter.toFixed(3)} (train ${trainAccuracy.toFixed(3)}, ` +
          `${((t2 - t1) / 1000).toFixed(1)} s)`,
      );
      expect(pretrainAccuracy).toBeGreaterThan(0.75);
      expect(accuracyAfter).toBeGreaterThan(0.65);
      expect(accuracyAfter - accuracyBefore).toBeGreaterThan(0.1);
      expectWeightsBitIdentical(before, await snapshotWeights(base));
      const restored = peft.unload();
      if (process.env.LSTM_PROBE) {
        // For the guide: the head alone on the frozen base (a linear probe), same data and steps.
        restored.layers.slice(0, 2).forEach((l) => (l.trainable = false));
        await fit(restored, b.train.x, b.train.y, EPOCHS, LR);
        console.log(
          `[lstm-fortunes ${tf.getBackend()}] head only: ${(await accuracy(restored, b.test.x, b.test.labels)).toFixed(3)}`,
        );
      }
      tf.dispose([a.train.x, a.train.y, a.test.x, a.test.y, b.train.x, b.train.y, b.test.x, b.test.y]);
      restored.dispose();
    }, 180_000);
  },
);
