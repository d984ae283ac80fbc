// The browser demo: fine-tune the Universal Sentence Encoder lite (from @tfjs-peft/models) with a
// classifier head on a SpamAssassin slice with one PEFT method on one tfjs backend, plot the loss,
// evaluate, save the adapter to IndexedDB and load it back (after a page reload too).
// State for the end-to-end test (e2e.mjs) is on `window.__demo` and `document.body.dataset.phase`.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import wasmUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { getPeftModel, PeftModel, resolveAdapterStore, selectBackend } from '@tfjs-peft/core';
import {
  universalSentenceEncoderLiteFromArtifacts,
  withClassifierHead,
  type UniversalSentenceEncoderLiteArtifacts,
  type Vocabulary,
} from '@tfjs-peft/models';
import { drawLossChart } from './chart';
import { METHODS, methodById, type DemoMethod } from './methods';
import { CLASS_NAMES, type SliceEmail, type SpamSlice } from './slice';

const MAX_LENGTH = 32;
const BATCH_SIZE = 16;
const HEAD_SEED = 1234;
const SAVED_KEY = 'tfjs-peft-browser-demo:saved';
const MODEL_URL = new URL('models/use-lite/', document.baseURI).href;
const SLICE_URL = new URL('data/spam-slice.json', document.baseURI).href;

setWasmPaths({
  'tfjs-backend-wasm.wasm': wasmUrl,
  'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
  'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedSimdUrl,
});

type Phase = 'loading' | 'ready' | 'training' | 'trained' | 'saving' | 'saved' | 'reloading' | 'loaded' | 'error';

/** What the page did, for people (rendered) and for e2e.mjs (window.__demo). */
interface DemoState {
  phase: Phase;
  method?: string;
  requestedBackend?: string;
  backend?: string;
  wasmThreads?: boolean;
  trainableParams?: number;
  allParams?: number;
  losses: number[];
  trainLossBefore?: number;
  trainLossAfter?: number;
  testAccuracyBefore?: number;
  testAccuracy?: number;
  /** p(spam) per test email of the model on screen. */
  probs?: number[];
  adapterUrl?: string;
  adapterBytes?: number;
  comparison?: { maxAbsDiff: number; sameLabels: boolean; identical: boolean };
  timings: Record<string, number>;
  error?: string;
}

/** What is kept in localStorage beside the IndexedDB adapter, to compare after a reload. */
interface SavedRecord {
  adapterUrl: string;
  method: string;
  backend: string;
  maxLength: number;
  testKeys: string[];
  probs: number[];
  testAccuracy: number;
  trainableParams: number;
  /** Loss per training step, to redraw the chart after a reload. */
  losses: number[];
  stepsPerEpoch: number;
  savedAt: string;
}

const state: DemoState = { phase: 'loading', losses: [], timings: {} };
(window as unknown as { __demo: DemoState }).__demo = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  method: $<HTMLSelectElement>('method'),
  backend: $<HTMLSelectElement>('backend'),
  epochs: $<HTMLInputElement>('epochs'),
  train: $<HTMLButtonElement>('train'),
  save: $<HTMLButtonElement>('save'),
  load: $<HTMLButtonElement>('load'),
  savedInfo: $('saved-info'),
  progress: $<HTMLProgressElement>('progress'),
  progressText: $('progress-text'),
  chart: document.getElementById('chart') as unknown as SVGSVGElement,
  summary: $('summary'),
  accuracy: $('accuracy'),
  compare: $('compare'),
  resultsSource: $('results-source'),
  predictions: $<HTMLTableSectionElement>('predictions').querySelector('tbody') as HTMLTableSectionElement,
  log: $('log'),
};

function log(line: string): void {
  const stamp = new Date().toISOString().slice(11, 19);
  ui.log.textContent += `${stamp} ${line}\n`;
  ui.log.scrollTop = ui.log.scrollHeight;
  console.log(line);
}

function setPhase(phase: Phase): void {
  state.phase = phase;
  document.body.dataset.phase = phase;
  const busy = phase === 'loading' || phase === 'training' || phase === 'saving' || phase === 'reloading';
  ui.train.disabled = busy;
  ui.method.disabled = busy;
  ui.backend.disabled = busy;
  ui.epochs.disabled = busy;
  ui.save.disabled = busy || !current?.peft || current.source !== 'trained';
  ui.load.disabled = busy || readSaved() === null;
}

function setSummary(rows: [string, string][]): void {
  ui.summary.replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const nextFrame = () => new Promise<void>((resolve) => requestAnimationFrame(() => resolve()));

// ---- data and model files --------------------------------------------------------------------

let slice: SpamSlice;
let artifacts: UniversalSentenceEncoderLiteArtifacts;

async function fetchOk(url: string): Promise<Response> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status}`);
  return response;
}

/** Fetches the model files once; every run builds fresh layers from these bytes. */
async function fetchAssets(): Promise<void> {
  const started = performance.now();
  slice = (await (await fetchOk(SLICE_URL)).json()) as SpamSlice;
  const modelJson = await (await fetchOk(MODEL_URL + 'model.json')).json();
  const paths: string[] = modelJson.weightsManifest.flatMap((group: { paths: string[] }) => group.paths);
  const [weightData, vocabulary] = await Promise.all([
    Promise.all(paths.map(async (p) => (await fetchOk(MODEL_URL + p)).arrayBuffer())),
    fetchOk(MODEL_URL + 'vocab.json').then((r) => r.json() as Promise<Vocabulary>),
  ]);
  artifacts = { modelJson, weightData, vocabulary };
  const bytes = weightData.reduce((sum, b) => sum + b.byteLength, 0);
  state.timings.fetchMs = performance.now() - started;
  log(
    `Fetched the USE-lite weights (${(bytes / 2 ** 20).toFixed(1)} MiB) and the SpamAssassin slice ` +
      `(${slice.train.length} train / ${slice.test.length} test of ${slice.corpus.emails} emails) in ${seconds(state.timings.fetchMs)}`,
  );
}

interface Encoded {
  ids: tf.Tensor2D;
  mask: tf.Tensor2D;
  labels: number[];
  oneHot: tf.Tensor2D;
}

interface Base {
  classifier: tfl.LayersModel;
  encode(emails: readonly SliceEmail[]): Encoded;
}

/** A fresh pre-trained encoder + `classifier` head (seeded) on the current backend. */
function buildBase(): Base {
  const use = universalSentenceEncoderLiteFromArtifacts(artifacts);
  const classifier = withClassifierHead(use.model, 2, { activation: 'softmax' });
  const head = classifier.getLayer('classifier');
  const [kernel, bias] = head.getWeights();
  const start = [tfl.initializers.glorotUniform({ seed: HEAD_SEED }).apply(kernel.shape) as tf.Tensor, tf.zerosLike(bias)];
  head.setWeights(start);
  tf.dispose(start);
  return {
    classifier,
    encode(emails) {
      const { tokenIds, attentionMask } = use.tokenizer.encode(
        emails.map((e) => e.text),
        MAX_LENGTH,
      );
      const labels = emails.map((e) => e.label);
      const oneHot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), 2), 'float32') as tf.Tensor2D);
      return { ids: tokenIds, mask: attentionMask, labels, oneHot };
    },
  };
}

function disposeEncoded(set: Encoded): void {
  tf.dispose([set.ids, set.mask, set.oneHot]);
}

/** p(spam) per email, accuracy and mean cross-entropy. */
async function evaluate(model: tfl.LayersModel, set: Encoded): Promise<{ probs: number[]; accuracy: number; loss: number }> {
  const out = model.predict([set.ids, set.mask], { batchSize: 32 }) as tf.Tensor;
  const values = await out.data();
  out.dispose();
  const probs: number[] = [];
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < set.labels.length; i++) {
    const [pHam, pSpam] = [values[2 * i], values[2 * i + 1]];
    probs.push(pSpam);
    if ((pSpam > pHam ? 1 : 0) === set.labels[i]) correct++;
    loss -= Math.log(Math.max(set.labels[i] === 1 ? pSpam : pHam, 1e-7));
  }
  return { probs, accuracy: correct / set.labels.length, loss: loss / set.labels.length };
}

// ---- what is on screen ---------------------------------------------------------------------------

interface Current {
  peft: PeftModel;
  base: Base;
  source: 'trained' | 'loaded';
  method: DemoMethod;
  backend: string;
}
let current: Current | undefined;

function disposeCurrent(): void {
  if (!current) return;
  current.peft.model.dispose();
  current.base.classifier.dispose();
  current = undefined;
}

function showPredictions(probs: readonly number[], source: string): void {
  const correct = probs.filter((p, i) => (p > 0.5 ? 1 : 0) === slice.test[i].label).length;
  ui.resultsSource.textContent = `(${source})`;
  ui.accuracy.textContent = `Test accuracy: ${correct} / ${probs.length} = ${((100 * correct) / probs.length).toFixed(1)}%`;
  ui.predictions.replaceChildren(
    ...slice.test.slice(0, 16).map((email, i) => {
      const row = document.createElement('tr');
      const predicted = probs[i] > 0.5 ? 1 : 0;
      const cells = [
        String(i + 1),
        email.text.replace(/\s+/g, ' '),
        CLASS_NAMES[email.label],
        probs[i].toFixed(4),
        CLASS_NAMES[predicted],
      ];
      cells.forEach((text, c) => {
        const td = document.createElement('td');
        td.textContent = text;
        if (c === 1) td.className = 'text';
        if (c === 4 && predicted !== email.label) td.className = 'wrong';
        row.append(td);
      });
      return row;
    }),
  );
}

function readSaved(): SavedRecord | null {
  try {
    const text = localStorage.getItem(SAVED_KEY);
    return text ? (JSON.parse(text) as SavedRecord) : null;
  } catch {
    return null;
  }
}

async function refreshSavedInfo(): Promise<void> {
  const saved = readSaved();
  if (saved) {
    // The record in localStorage is only a note: check that the adapter itself is in IndexedDB.
    const config = await resolveAdapterStore(saved.adapterUrl).readFile('adapter_config.json', 1 << 20);
    if (config === null) {
      localStorage.removeItem(SAVED_KEY);
      ui.savedInfo.textContent = '';
      return;
    }
    ui.savedInfo.textContent =
      `Saved adapter: ${saved.adapterUrl} (${methodById(saved.method).label}, trained on ${saved.backend}, ` +
      `test accuracy ${(100 * saved.testAccuracy).toFixed(1)}%, ${new Date(saved.savedAt).toLocaleString()})`;
  } else {
    ui.savedInfo.textContent = 'No saved adapter in this browser yet.';
  }
}

// ---- actions ---------------------------------------------------------------------------------------

async function useBackend(requested: string): Promise<string> {
  state.requestedBackend = requested;
  const started = performance.now();
  // A backend whose start hangs (e.g. wasm workers failing to start) becomes an error, not a stuck page.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const name = await Promise.race([
    selectBackend(requested === 'cpu' ? ['cpu'] : [requested, 'cpu'], log),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`backend ${requested} did not start within 90 s`)), 90_000);
    }),
  ]).finally(() => clearTimeout(timer));
  if (name !== requested) log(`Backend ${requested} is not usable here: fell back to ${name}`);
  state.backend = name;
  state.wasmThreads = name === 'wasm' ? tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') : undefined;
  state.timings.backendInitMs = performance.now() - started;
  return name;
}

async function train(): Promise<void> {
  const method = methodById(ui.method.value);
  const epochs = Math.max(1, Math.min(20, Number(ui.epochs.value) || 3));
  setPhase('training');
  disposeCurrent();
  Object.assign(state, {
    method: method.id,
    losses: [],
    trainLossBefore: undefined,
    trainLossAfter: undefined,
    testAccuracy: undefined,
    probs: undefined,
    comparison: undefined,
    error: undefined,
    timings: { fetchMs: state.timings.fetchMs },
  });
  ui.compare.textContent = '';
  const backend = await useBackend(ui.backend.value);
  const threads = state.wasmThreads === undefined ? '' : state.wasmThreads ? ' (threads)' : ' (single thread)';
  let started = performance.now();
  const base = buildBase();
  const peft = getPeftModel(base.classifier, method.config());
  current = { peft, base, source: 'trained', method, backend };
  const counts = peft.getNbTrainableParameters();
  state.trainableParams = counts.trainableParams;
  state.allParams = counts.allParams;
  state.timings.buildMs = performance.now() - started;
  log(`${method.label} on ${backend}${threads}: ${counts.trainableParams.toLocaleString('en-US')} trainable of ${counts.allParams.toLocaleString('en-US')} parameters (${counts.trainablePercent.toFixed(3)}%)`);

  const trainSet = base.encode(slice.train);
  const testSet = base.encode(slice.test);
  try {
    started = performance.now();
    const before = await evaluate(peft.model, trainSet);
    const testBefore = await evaluate(peft.model, testSet);
    state.trainLossBefore = before.loss;
    state.testAccuracyBefore = testBefore.accuracy;
    state.timings.evalBeforeMs = performance.now() - started;
    log(`Before training: train loss ${before.loss.toFixed(4)}, test accuracy ${(100 * testBefore.accuracy).toFixed(1)}% (${seconds(state.timings.evalBeforeMs)})`);

    const stepsPerEpoch = Math.ceil(slice.train.length / BATCH_SIZE);
    const totalSteps = stepsPerEpoch * epochs;
    ui.progress.max = totalSteps;
    ui.progress.value = 0;
    drawLossChart(ui.chart, [], totalSteps, stepsPerEpoch);
    peft.model.compile({ optimizer: tf.train.adam(method.learningRate), loss: 'categoricalCrossentropy' });
    const trainStarted = performance.now();
    let stepStarted = trainStarted;
    await peft.model.fit([trainSet.ids, trainSet.mask], trainSet.oneHot, {
      epochs,
      batchSize: BATCH_SIZE,
      shuffle: true,
      verbose: 0,
      callbacks: {
        onBatchBegin: async () => {
          stepStarted = performance.now();
        },
        onBatchEnd: async (_batch, logs) => {
          state.losses.push(Number(logs?.loss));
          const step = state.losses.length;
          const elapsed = performance.now() - trainStarted;
          ui.progress.value = step;
          ui.progressText.textContent =
            `step ${step}/${totalSteps} · loss ${Number(logs?.loss).toFixed(4)} · ${seconds(performance.now() - stepStarted)}/step · ` +
            `ETA ${seconds((elapsed / step) * (totalSteps - step))}`;
          drawLossChart(ui.chart, state.losses, totalSteps, stepsPerEpoch);
          await nextFrame();
        },
      },
    });
    state.timings.trainMs = performance.now() - trainStarted;
    ui.progressText.textContent = `done: ${totalSteps} steps in ${seconds(state.timings.trainMs)} (${seconds(state.timings.trainMs / totalSteps)}/step)`;

    started = performance.now();
    const after = await evaluate(peft.model, trainSet);
    const test = await evaluate(peft.model, testSet);
    state.timings.evalAfterMs = performance.now() - started;
    state.trainLossAfter = after.loss;
    state.testAccuracy = test.accuracy;
    state.probs = test.probs;
    log(
      `After ${totalSteps} steps (${seconds(state.timings.trainMs)}): train loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}, ` +
        `test accuracy ${(100 * testBefore.accuracy).toFixed(1)}% → ${(100 * test.accuracy).toFixed(1)}%`,
    );
    setSummary([
      ['method', `${method.label}, Adam lr ${method.learningRate}`],
      ['backend', `${backend}${threads}`],
      ['trainable parameters', `${counts.trainableParams.toLocaleString('en-US')} of ${counts.allParams.toLocaleString('en-US')} (${counts.trainablePercent.toFixed(3)}%)`],
      ['data', `${slice.train.length} train / ${slice.test.length} test emails, ${MAX_LENGTH} tokens, batch ${BATCH_SIZE}, ${epochs} epoch${epochs === 1 ? '' : 's'}`],
      ['train loss (whole set)', `${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}`],
      ['test accuracy', `${(100 * testBefore.accuracy).toFixed(1)}% → ${(100 * test.accuracy).toFixed(1)}%`],
      ['time', `${seconds(state.timings.trainMs)} training (${seconds(state.timings.trainMs / totalSteps)}/step)`],
    ]);
    showPredictions(test.probs, `fine-tuned in this page with ${method.label} on ${backend}`);
  } finally {
    disposeEncoded(trainSet);
    disposeEncoded(testSet);
  }
  setPhase('trained');
}

async function save(): Promise<void> {
  if (!current || !state.probs || state.testAccuracy === undefined) return;
  setPhase('saving');
  const adapterUrl = `indexeddb://spam-${current.method.id}`;
  const started = performance.now();
  await current.peft.saveAdapter(adapterUrl);
  state.timings.saveMs = performance.now() - started;
  const store = resolveAdapterStore(adapterUrl);
  const files = await Promise.all(
    ['adapter_config.json', 'adapter_model.safetensors'].map((f) => store.readFile(f, 1 << 30)),
  );
  state.adapterUrl = adapterUrl;
  state.adapterBytes = files.reduce((sum, f) => sum + (f?.byteLength ?? 0), 0);
  const record: SavedRecord = {
    adapterUrl,
    method: current.method.id,
    backend: current.backend,
    maxLength: MAX_LENGTH,
    testKeys: slice.test.map((e) => e.key),
    probs: state.probs,
    testAccuracy: state.testAccuracy,
    trainableParams: state.trainableParams ?? 0,
    losses: state.losses,
    stepsPerEpoch: Math.ceil(slice.train.length / BATCH_SIZE),
    savedAt: new Date().toISOString(),
  };
  localStorage.setItem(SAVED_KEY, JSON.stringify(record));
  log(`Saved the adapter to ${adapterUrl}: ${(state.adapterBytes / 1024).toFixed(1)} KiB (adapter_config.json + adapter_model.safetensors) in ${seconds(state.timings.saveMs)}`);
  await refreshSavedInfo();
  setPhase('saved');
}

async function loadSaved(): Promise<void> {
  const saved = readSaved();
  if (!saved) return;
  setPhase('reloading');
  disposeCurrent();
  state.error = undefined;
  const method = methodById(saved.method);
  ui.method.value = method.id;
  const backend = await useBackend(ui.backend.value);
  const started = performance.now();
  const base = buildBase();
  const peft = await PeftModel.fromPretrained(base.classifier, saved.adapterUrl);
  current = { peft, base, source: 'loaded', method, backend };
  state.timings.loadMs = performance.now() - started;
  const keys = slice.test.map((e) => e.key);
  if (keys.join('\n') !== saved.testKeys.join('\n')) throw new Error('The test slice changed since the adapter was saved.');
  const testSet = base.encode(slice.test);
  try {
    const test = await evaluate(peft.model, testSet);
    state.probs = test.probs;
    state.testAccuracy = test.accuracy;
    state.method = method.id;
    let maxAbsDiff = 0;
    let sameLabels = true;
    test.probs.forEach((p, i) => {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(p - saved.probs[i]));
      if (p > 0.5 !== saved.probs[i] > 0.5) sameLabels = false;
    });
    const identical = test.probs.every((p, i) => p === saved.probs[i]);
    state.comparison = { maxAbsDiff, sameLabels, identical };
    const verdict = sameLabels && maxAbsDiff < 1e-5;
    ui.compare.className = verdict ? 'ok' : 'bad';
    ui.compare.textContent =
      `${verdict ? '✓' : '✗'} Compared with the predictions made right after training (saved with the adapter, on ${saved.backend}): ` +
      `${sameLabels ? 'same' : 'DIFFERENT'} predicted labels, max |Δ p(spam)| = ${maxAbsDiff.toExponential(2)}${identical ? ' (bit-identical)' : ''}`;
    log(`Loaded ${saved.adapterUrl} with PeftModel.fromPretrained onto a fresh pre-trained base on ${backend} in ${seconds(state.timings.loadMs)}: test accuracy ${(100 * test.accuracy).toFixed(1)}%, max |Δp| ${maxAbsDiff.toExponential(2)}`);
    showPredictions(test.probs, `adapter loaded from ${saved.adapterUrl} on ${backend}`);
    // The chart and counts are those of the training run that saved the adapter (kept beside it).
    drawLossChart(ui.chart, saved.losses, saved.losses.length, saved.stepsPerEpoch);
    ui.progress.max = 1;
    ui.progress.value = 0;
    ui.progressText.textContent = `loss curve of the run that saved ${saved.adapterUrl}`;
    setSummary([
      ['loaded', `${saved.adapterUrl} (${method.label}), saved ${new Date(saved.savedAt).toLocaleString()}`],
      ['backend', `${backend} (trained on ${saved.backend})`],
      ['adapter parameters', `${saved.trainableParams.toLocaleString('en-US')} (loaded frozen, for inference)`],
      ['time', `${seconds(state.timings.loadMs)} to build the base and load the adapter`],
    ]);
  } finally {
    disposeEncoded(testSet);
  }
  setPhase('loaded');
}

function guard(action: () => Promise<void>): () => void {
  return () => {
    action().catch((error: unknown) => {
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      state.error = message;
      log(`ERROR ${message}`);
      console.error(error);
      ui.compare.className = 'bad';
      ui.compare.textContent = message;
      setPhase('error');
    });
  };
}

async function init(): Promise<void> {
  for (const m of METHODS) ui.method.append(new Option(m.label, m.id));
  const params = new URLSearchParams(location.search);
  if (params.has('method')) ui.method.value = params.get('method') as string;
  if (params.has('backend')) ui.backend.value = params.get('backend') as string;
  if (params.has('epochs')) ui.epochs.value = params.get('epochs') as string;
  if (!('gpu' in navigator)) ui.backend.querySelector('option[value=webgpu]')!.textContent = 'WebGPU (not in this browser)';
  drawLossChart(ui.chart, [], 1, 0);
  ui.train.addEventListener('click', guard(train));
  ui.save.addEventListener('click', guard(save));
  ui.load.addEventListener('click', guard(loadSaved));
  log(`crossOriginIsolated=${globalThis.crossOriginIsolated} (wasm threads need it), navigator.gpu ${'gpu' in navigator ? 'present' : 'absent'}`);
  await fetchAssets();
  await refreshSavedInfo();
  const saved = readSaved();
  if (saved && !params.has('backend')) ui.backend.value = saved.backend;
  setPhase('ready');
}

guard(init)();
