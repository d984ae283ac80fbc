// Prompt tuning on a plain tfjs-layers text classifier (Embedding → LSTM → Dense) on real text,
// Debian fortunes (apt package `fortunes`, /usr/share/games/fortunes), as prompt tuning is meant to
// be used: a frozen model that can do several tasks is steered to one of them by a learned prompt.
//
// The base, fixtures/lstm-fortunes-multitask (made by tools/fixtures-lstm, see its README), was
// trained on two binary questions about the same four fortune files, the question chosen by a task
// token read first: `[<task:A> | <task:B>, …words]`. The questions disagree on half of the files, so
// without a task token the base cannot know which answer is wanted (it leans to task B, and is near
// chance on task A). Here the base and its head are frozen; a prompt of virtual tokens (initialised
// from words, not from the task tokens) is trained on task A's training texts *without* any task
// token, and held-out accuracy on task A must rise clearly. A second prompt does the same for task B,
// and setAdapter switches between them.
// Everything is deterministic: the fixture's split, 'text' initialisation, no shuffling in fit.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getPeftModel } from '@tfjs-peft/core';
import { describeEachBackend, expectWeightsBitIdentical, snapshotWeights } from '@tfjs-peft/test-utils';
import { PromptTuningConfig } from './index';

const FIXTURE = resolve(__dirname, '../../../fixtures/lstm-fortunes-multitask');
const FORTUNES = '/usr/share/games/fortunes';
type Task = 'A' | 'B';

interface Vocab {
  tokens: string[];
  unknown: number;
  taskTokens: Record<Task, number>;
  maxWords: number;
  categories: string[];
  tasks: Record<Task, { name: string; positive: string[] }>;
  fileCounts: Record<string, number>;
  split: Record<string, { train: number[]; heldOut: number[] }>;
}
const vocab = JSON.parse(readFileSync(join(FIXTURE, 'vocab.json'), 'utf8')) as Vocab;

/** Training texts per category for each prompt (the first 60 of the fixture's 450), and the prompt's settings. */
const TRAIN_PER_CATEGORY = 60;
const VIRTUAL_TOKENS = 2;
const INIT_TEXT: Record<Task, string> = { A: 'politics women', B: 'politics definition' };
const EPOCHS = 3;
const BATCH = 16;
const LR = 0.05;

/** As tools/fixtures-lstm/src/data.ts reads a fortune file (the split's positions refer to this list). */
function readFortunes(category: string): string[] {
  return readFileSync(join(FORTUNES, category), 'latin1')
    .split(/\n%\n/)
    .map((t) => t.replace(/\s+/g, ' ').trim())
    .filter((t) => t.length > 0);
}

const ids = new Map(vocab.tokens.map((w, i) => [w, i]));
/** The fixture's tokenizer: lower-case words, unknown → <unk>; no padding, no task token. */
const tokenize = (text: string) =>
  (text.toLowerCase().match(/[a-z']+/g) ?? [])
    .slice(0, vocab.maxWords)
    .map((w) => ids.get(w) ?? vocab.unknown);
const label = (task: Task, category: string) => (vocab.tasks[task].positive.includes(category) ? 1 : 0);

interface Example {
  category: string;
  ids: number[];
}

/** One set of the fixture's split, categories interleaved (so every batch holds all four). */
function examples(set: 'train' | 'heldOut', perCategory = Infinity): Example[] {
  const lists = vocab.categories.map((category) => {
    const texts = readFortunes(category);
    if (texts.length !== vocab.fileCounts[category]) {
      throw new Error(
        `${FORTUNES}/${category} has ${texts.length} fortunes, the fixture's split was made on ${vocab.fileCounts[category]}`,
      );
    }
    return vocab.split[category][set]
      .slice(0, perCategory)
      .map((i) => ({ category, ids: tokenize(texts[i]) }));
  });
  const out: Example[] = [];
  for (let i = 0; i < Math.max(...lists.map((l) => l.length)); i++)
    for (const l of lists) if (i < l.length) out.push(l[i]);
  return out;
}

/** [rows, maxWords (+1 with a task token)] int32, padded with 0 after the text. */
function inputs(rows: readonly Example[], taskToken: Task | null): tf.Tensor2D {
  const width = vocab.maxWords + (taskToken === null ? 0 : 1);
  return tf.tensor2d(
    rows.map((r) => {
      const row = taskToken === null ? r.ids : [vocab.taskTokens[taskToken], ...r.ids];
      return [...row, ...new Array<number>(width - row.length).fill(0)];
    }),
    [rows.length, width],
    'int32',
  );
}

async function accuracy(
  model: tfl.LayersModel,
  x: tf.Tensor,
  rows: readonly Example[],
  task: Task,
): Promise<number> {
  const predicted = tf.tidy(() => tf.argMax(model.predict(x, { batchSize: 200 }) as tf.Tensor, 1));
  const values = await predicted.data();
  predicted.dispose();
  return rows.filter((r, i) => values[i] === label(task, r.category)).length / rows.length;
}

async function loadBase(): Promise<tfl.LayersModel> {
  // tfjs-node's file:// handler returns Node-realm typed arrays that tfjs' io rejects inside jest's
  // sandbox, so the files are read here and handed over with fromMemory.
  const modelJson = JSON.parse(readFileSync(join(FIXTURE, 'model.json'), 'utf8'));
  const weightData = new Uint8Array(
    readFileSync(join(FIXTURE, modelJson.weightsManifest[0].paths[0])),
  ).slice().buffer;
  return tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: modelJson.modelTopology,
      weightSpecs: modelJson.weightsManifest[0].weights,
      weightData,
    }),
  );
}

async function trainPrompt(model: tfl.LayersModel, x: tf.Tensor, rows: readonly Example[], task: Task) {
  const y = tf.tidy(() =>
    tf.oneHot(
      tf.tensor1d(
        rows.map((r) => label(task, r.category)),
        'int32',
      ),
      2,
    ),
  );
  const optimizer = tf.train.adam(LR);
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  await model.fit(x, y, { epochs: EPOCHS, batchSize: BATCH, shuffle: false, verbose: 0 });
  optimizer.dispose();
  y.dispose();
}

const available = vocab.categories.every((c) => existsSync(join(FORTUNES, c)));
if (!available)
  console.warn(
    `[tfjs-peft] SKIPPED the LSTM prompt-tuning test: ${FORTUNES} lacks the fortunes package's files`,
  );

// Not on webgpu: tfjs-backend-webgpu 4.22 cannot run this *base* model (Embedding with maskZero →
// LSTM): its RNN mask transpose fails WGSL validation ("type mismatch for argument 2 in call to
// 'setOutputAtIndex', expected 'f32', got 'i32'", TransposeProgram), so every output is the head's
// bias alone and no gradient reaches the prompt — a backend bug below this library, found here.
(available ? describeEachBackend : describe.skip)(
  'Prompt tuning a frozen multi-task Embedding → LSTM (fortunes)',
  () => {
    it('a learned prompt steers the frozen base to task A (and another to task B); base bit-identical', async () => {
      const t0 = Date.now();
      const base = await loadBase();
      const heldOut = examples('heldOut');
      const train = examples('train', TRAIN_PER_CATEGORY);
      const x = {
        heldOut: inputs(heldOut, null),
        heldOutA: inputs(heldOut, 'A'),
        train: inputs(train, null),
      };

      // The starting point: task A with its task token, and without any (the base, never shown a text
      // without a task token, leans to task B then).
      const baseline = {
        A: await accuracy(base, x.heldOutA, heldOut, 'A'),
        noTokenA: await accuracy(base, x.heldOut, heldOut, 'A'),
      };
      const before = await snapshotWeights(base);

      // Prompt tuning, head frozen too: only the virtual tokens train.
      const config = (task: Task) =>
        new PromptTuningConfig({
          numVirtualTokens: VIRTUAL_TOKENS,
          promptTuningInit: 'text',
          promptTuningInitText: INIT_TEXT[task],
          tokenizer: tokenize,
        });
      const peft = getPeftModel(base, config('A'), 'task_a');
      const lines: string[] = [];
      peft.printTrainableParameters((l) => lines.push(l));
      expect(peft.model.trainableWeights.map((w) => w.name)).toEqual([
        expect.stringMatching(/prompt_embeddings_task_a/),
      ]);
      const initialA = await snapshotWeights(peft.model.trainableWeights);
      await trainPrompt(peft.model, x.train, train, 'A');
      const promptA = await accuracy(peft.model, x.heldOut, heldOut, 'A');
      const trainedA = await snapshotWeights(peft.model.trainableWeights);
      expect(trainedA[0].bytes).not.toEqual(initialA[0].bytes);
      expectWeightsBitIdentical(before, await snapshotWeights(base));

      // A second prompt on the same frozen base, for task B; switching selects each task.
      peft.addAdapter('task_b', config('B'));
      peft.setAdapter('task_b');
      await trainPrompt(peft.model, x.train, train, 'B');
      const promptB = await accuracy(peft.model, x.heldOut, heldOut, 'B');
      const promptBonA = await accuracy(peft.model, x.heldOut, heldOut, 'A');
      peft.setAdapter('task_a');
      const promptAAgain = await accuracy(peft.model, x.heldOut, heldOut, 'A');
      expectWeightsBitIdentical(trainedA, await snapshotWeights(peft.model.trainableWeights));
      expectWeightsBitIdentical(before, await snapshotWeights(base));

      const f = (v: number) => v.toFixed(3);
      console.log(
        `[lstm-fortunes ${tf.getBackend()}] held-out task A: base with <task:A> ${f(baseline.A)}, without a task token ` +
          `${f(baseline.noTokenA)}; ${lines[0]}; prompt A ${f(promptA)}; prompt B: ${f(promptB)} on task B, ${f(promptBonA)} on task A; ` +
          `${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
      // The fixture is what its README says: task A works with its token, not without one.
      expect(baseline.A).toBeGreaterThan(0.75);
      expect(baseline.noTokenA).toBeLessThan(0.6);
      // The prompt alone (base and head frozen) steers the model to task A, and the other prompt to B.
      expect(promptA).toBeGreaterThanOrEqual(0.7);
      expect(promptA - baseline.noTokenA).toBeGreaterThanOrEqual(0.15);
      expect(promptB).toBeGreaterThanOrEqual(0.7);
      expect(promptBonA).toBeLessThan(promptA - 0.1);
      expect(promptAAgain).toBe(promptA);

      tf.dispose(Object.values(x));
      peft.unload().dispose();
    }, 600_000);
  },
  { only: ['cpu', 'wasm', 'tensorflow'] },
);
