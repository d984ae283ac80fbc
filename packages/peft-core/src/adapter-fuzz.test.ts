// Fuzz suite: hostile adapter files through the whole load path,
// PeftModel.fromPretrained(base, MemoryAdapterStore). Both files of a real saved LoRA adapter
// (plain LoRA; DoRA + rsLoRA + a saved head) are mutated: adapter_model.safetensors, adapter_config.json
// or both. Every case must end in a PeftError or a valid adapter — never another exception, a hang, an
// allocation beyond the files' size, a polluted prototype, a changed base model or a leaked tensor.
//
//   CI:    1,000 cases per backend (seed 20240601)
//   long:  TFJS_PEFT_FUZZ=long → 10,000 cases per backend; TFJS_PEFT_FUZZ=<n> → n per backend
//   replay one case: TFJS_PEFT_FUZZ_SEED=<seed> TFJS_PEFT_FUZZ_CASE=<index>
//
// LoRA is imported from its sources by path: @tfjs-peft/core must not depend on a method package
// (the dependency would be circular), but its loader is only meaningful with a real method registered.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  arrayBufferBytes,
  describeEachBackend,
  expectPrototypesClean,
  expectWeightsBitIdentical,
  forcedGc,
  fuzzCaseCount,
  FuzzRandom,
  JSON_MUTATIONS,
  prototypeFingerprint,
  SAFETENSORS_MUTATIONS,
  snapshotWeights,
  type FileMutation,
} from '@tfjs-peft/test-utils';
import { LoraConfig } from '../../peft-lora/src/index';
import { MemoryAdapterStore } from './adapter-store';
import { PeftError } from './errors';
import { getPeftModel } from './get-peft-model';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PeftModel } from './peft-model';

const SEED = Number(process.env.TFJS_PEFT_FUZZ_SEED ?? 20240601);
const ONLY_CASE =
  process.env.TFJS_PEFT_FUZZ_CASE === undefined ? undefined : Number(process.env.TFJS_PEFT_FUZZ_CASE);
const LONG = process.env.TFJS_PEFT_FUZZ === 'long';
/** Per-case wall-clock bound. A case is a few milliseconds; this catches super-linear work, not jitter. */
const CASE_TIME_LIMIT_MS = 5000;
/**
 * Allocation bound per case: ArrayBuffer bytes allocated during the case (measured after a forced GC,
 * read back without one, so garbage made by the case counts) ≤ FACTOR × the two files' size + SLACK.
 * FACTOR covers the store's copy, decoding 1-byte dtypes to float32 (×4) and the adapter's variables;
 * SLACK the graph rebuild and tfjs bookkeeping, independent of the files.
 */
const ALLOCATION_FACTOR = 16;
const ALLOCATION_SLACK = 512 * 1024;

function makeBase(): tfl.LayersModel {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: s });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'fc1',
        units: 10,
        activation: 'relu',
        inputShape: [6],
        kernelInitializer: init(1),
        biasInitializer: 'ones',
      }),
      tfl.layers.dense({ name: 'fc2', units: 8, activation: 'tanh', kernelInitializer: init(2) }),
      tfl.layers.dense({ name: 'head', units: 3, kernelInitializer: init(3) }),
    ],
  });
}

interface SourceAdapter {
  name: string;
  files: Map<string, Uint8Array>;
  /** float32 bytes of the adapter's tensors when loaded (the legitimate allocation). */
  variableBytes: number;
}

async function saveSourceAdapters(): Promise<SourceAdapter[]> {
  const configs: Array<[string, LoraConfig]> = [
    ['lora', new LoraConfig({ r: 4, loraAlpha: 8, targetModules: ['fc1', 'fc2'], initLoraWeights: false })],
    [
      'dora-rslora-head',
      new LoraConfig({
        r: 2,
        loraAlpha: 4,
        useRslora: true,
        useDora: true,
        targetModules: ['fc1', 'fc2'],
        modulesToSave: ['head'],
        initLoraWeights: false,
      }),
    ],
  ];
  const sources: SourceAdapter[] = [];
  for (const [name, config] of configs) {
    const base = makeBase();
    const peft = getPeftModel(base, config);
    const store = new MemoryAdapterStore();
    await peft.saveAdapter(store);
    const variableBytes = peft.trainableVariables.reduce((sum, v) => sum + v.size * 4, 0);
    peft.unload();
    base.dispose();
    sources.push({ name, files: new Map(store.files), variableBytes });
  }
  return sources;
}

interface Tally {
  cases: number;
  typedError: number;
  valid: number;
  /** Valid loads whose tensors hold NaN/Inf (the loader does not refuse them yet; see adapter-validation). */
  validNonFinite: number;
}

type Target = 'safetensors' | 'config' | 'both';

function mutate(
  source: SourceAdapter,
  rng: FuzzRandom,
): { kinds: string[]; files: Map<string, Uint8Array>; options: FileMutation['loadOptions'] } {
  const files = new Map(source.files);
  const target: Target = rng.pick<Target>([
    'safetensors',
    'safetensors',
    'safetensors',
    'config',
    'config',
    'both',
  ]);
  const kinds: string[] = [];
  let options: FileMutation['loadOptions'] = {};
  if (target !== 'config') {
    const kind = rng.pick(Object.keys(SAFETENSORS_MUTATIONS));
    const m = SAFETENSORS_MUTATIONS[kind](files.get(ADAPTER_WEIGHTS_FILE)!, rng);
    files.set(ADAPTER_WEIGHTS_FILE, m.bytes);
    options = { ...options, ...m.loadOptions };
    kinds.push(m.kind);
  }
  if (target !== 'safetensors') {
    const kind = rng.pick(Object.keys(JSON_MUTATIONS));
    const m = JSON_MUTATIONS[kind](files.get(ADAPTER_CONFIG_FILE)!, rng);
    files.set(ADAPTER_CONFIG_FILE, m.bytes);
    options = { ...options, ...m.loadOptions };
    kinds.push(m.kind);
  }
  return { kinds, files, options };
}

async function hasNonFinite(peft: PeftModel): Promise<boolean> {
  for (const v of peft.model.weights) {
    const data = await v.read().data();
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return true;
  }
  return false;
}

/** What the tally and the violations look like in the test output and in SECURITY.md. */
function report(
  backend: string,
  count: number,
  tallies: Map<string, Tally>,
  stats: { maxMs: number; slowest: string; maxAllocRatio: number; maxAllocBytes: number },
) {
  const rows = [...tallies.entries()].sort(([a], [b]) => a.localeCompare(b));
  const lines = rows.map(
    ([kind, t]) =>
      `  ${kind.padEnd(28)} ${String(t.cases).padStart(6)} cases  ${String(t.typedError).padStart(6)} typed errors  ${String(t.valid).padStart(5)} valid${t.validNonFinite ? ` (${t.validNonFinite} with NaN/Inf values)` : ''}`,
  );
  console.log(
    `[adapter-fuzz ${backend}] ${count} cases, seed ${SEED}, ${rows.length} mutation kinds; slowest case ${stats.maxMs.toFixed(1)} ms (${stats.slowest}); ` +
      `largest allocation ${(stats.maxAllocBytes / 1024).toFixed(0)} KiB (${stats.maxAllocRatio.toFixed(2)}× the files)\n${lines.join('\n')}`,
  );
}

describeEachBackend('adapter loading survives hostile files (fuzz)', (backend) => {
  const count = fuzzCaseCount(process.env.TFJS_PEFT_FUZZ, 1000, 10_000);

  it(
    `${ONLY_CASE === undefined ? count : 1} mutated adapters end in a PeftError or a valid load; base, prototypes and memory untouched`,
    async () => {
      const sources = await saveSourceAdapters();
      const base = makeBase();
      const baseBefore = await snapshotWeights(base);
      const flagsBefore = JSON.stringify(
        base.layers.map((l) => [l.name, l.trainable, l.weights.map((w) => w.trainable)]),
      );
      const protoBefore = prototypeFingerprint();
      const gc = forcedGc();
      const root = new FuzzRandom(SEED);
      const tallies = new Map<string, Tally>();
      const violations: string[] = [];
      const stats = { maxMs: 0, slowest: '', maxAllocRatio: 0, maxAllocBytes: 0 };
      const first = ONLY_CASE ?? 0;
      const last = ONLY_CASE ?? count - 1;

      for (let index = first; index <= last && violations.length < 20; index++) {
        const rng = root.fork(index);
        const source = rng.pick(sources);
        const { kinds, files, options } = mutate(source, rng);
        const fileBytes = [...files.values()].reduce((s, f) => s + f.byteLength, 0);
        const store = new MemoryAdapterStore();
        for (const [path, bytes] of files) store.files.set(path, bytes);
        const label = `case ${index} (seed ${SEED}, ${source.name}, ${kinds.join(' + ')})`;
        const fail = (problem: string) => violations.push(`${label}: ${problem}`);

        const tensorsBefore = tf.memory().numTensors;
        const bytesBefore = tf.memory().numBytes;
        gc?.(index % 100 === 0 ? 'major' : 'minor');
        const buffersBefore = arrayBufferBytes();
        const start = performance.now();
        let peft: PeftModel | null = null;
        let outcome: 'typedError' | 'valid' = 'typedError';
        try {
          peft = await PeftModel.fromPretrained(base, store, { ...options, isTrainable: rng.chance(0.5) });
          outcome = 'valid';
        } catch (error) {
          if (!(error instanceof PeftError))
            fail(`threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
        }
        const elapsed = performance.now() - start;
        const buffersAfter = arrayBufferBytes();
        if (elapsed > stats.maxMs) Object.assign(stats, { maxMs: elapsed, slowest: label });
        if (elapsed > CASE_TIME_LIMIT_MS) fail(`took ${elapsed.toFixed(0)} ms (limit ${CASE_TIME_LIMIT_MS})`);
        if (buffersBefore !== undefined && buffersAfter !== undefined) {
          const allocated = buffersAfter - buffersBefore;
          stats.maxAllocBytes = Math.max(stats.maxAllocBytes, allocated);
          stats.maxAllocRatio = Math.max(stats.maxAllocRatio, allocated / Math.max(1, fileBytes));
          if (allocated > ALLOCATION_FACTOR * fileBytes + ALLOCATION_SLACK)
            fail(`allocated ${allocated} ArrayBuffer bytes for ${fileBytes} bytes of files`);
        }
        try {
          expectPrototypesClean(protoBefore);
        } catch (error) {
          fail((error as Error).message);
          break;
        }

        let nonFinite = false;
        if (peft) {
          const grown = tf.memory().numBytes - bytesBefore;
          if (grown > Math.min(4 * fileBytes, source.variableBytes))
            fail(`a valid load grew numBytes by ${grown}`);
          // The loaded model runs.
          const y = tf.tidy(() => peft!.model.predict(tf.ones([2, 6])) as tf.Tensor);
          if (y.shape.join() !== '2,3') fail(`the loaded model's output has shape [${y.shape}]`);
          y.dispose();
          nonFinite = await hasNonFinite(peft);
          peft.unload();
        }
        if (tf.memory().numTensors !== tensorsBefore)
          fail(`left ${tf.memory().numTensors - tensorsBefore} tensors alive`);
        if (tf.memory().numBytes !== bytesBefore)
          fail(`left ${tf.memory().numBytes - bytesBefore} tensor bytes allocated`);
        if (base.weights.length !== baseBefore.length)
          fail(`the base has ${base.weights.length} weights, not ${baseBefore.length}`);
        try {
          expectWeightsBitIdentical(baseBefore, await snapshotWeights(base));
          const flags = JSON.stringify(
            base.layers.map((l) => [l.name, l.trainable, l.weights.map((w) => w.trainable)]),
          );
          if (flags !== flagsBefore) throw new Error(`trainable flags changed: ${flags}`);
        } catch (error) {
          fail(`base model changed: ${(error as Error).message}`);
          break;
        }

        for (const kind of kinds) {
          const t = tallies.get(kind) ?? { cases: 0, typedError: 0, valid: 0, validNonFinite: 0 };
          t.cases++;
          t[outcome]++;
          if (nonFinite) t.validNonFinite++;
          tallies.set(kind, t);
        }
      }

      report(backend, last - first + 1, tallies, stats);
      base.dispose();
      expect(violations).toEqual([]);
      if (ONLY_CASE === undefined) {
        // Every mutation kind ran, and hostile input was refused far more often than not.
        expect(tallies.size).toBe(
          Object.keys(SAFETENSORS_MUTATIONS).length + Object.keys(JSON_MUTATIONS).length,
        );
      }
    },
    LONG ? 3_600_000 : 300_000,
  );
});

// A config must not make the loader allocate far beyond the files: the ranks a LoRA config implies
// are checked against the file (PeftMethod.checkConfigAgainstFile) before any variable exists.
describeEachBackend(
  'a config cannot make the loader allocate far beyond the files',
  () => {
    it('r = 65536 in adapter_config.json beside an r = 4 safetensors file', async () => {
      const [source] = await saveSourceAdapters();
      const config = JSON.parse(new TextDecoder().decode(source.files.get(ADAPTER_CONFIG_FILE)!));
      const store = new MemoryAdapterStore();
      store.files.set(ADAPTER_WEIGHTS_FILE, source.files.get(ADAPTER_WEIGHTS_FILE)!);
      store.files.set(ADAPTER_CONFIG_FILE, new TextEncoder().encode(JSON.stringify({ ...config, r: 65536 })));
      const fileBytes = [...store.files.values()].reduce((s, f) => s + f.byteLength, 0);
      const base = makeBase();
      const gc = forcedGc();
      gc?.('major');
      const before = arrayBufferBytes();
      const error = await PeftModel.fromPretrained(base, store).then(
        () => null,
        (e) => e,
      );
      const after = arrayBufferBytes();
      base.dispose();
      expect(error).toBeInstanceOf(PeftError);
      console.log(
        `[adapter-fuzz] r=65536 config: ${fileBytes} bytes of files, ${after !== undefined && before !== undefined ? after - before : '?'} ArrayBuffer bytes allocated; ${(error as Error).message}`,
      );
      if (after !== undefined && before !== undefined)
        expect(after - before).toBeLessThan(ALLOCATION_FACTOR * fileBytes + ALLOCATION_SLACK);
    });

    // Found by the long mode: rank_pattern keys must compile and its ranks are bounded like r.
    const patternCases: Array<[string, Record<string, number>, RegExp]> = [
      [
        'a rank_pattern key that is not a RegExp ("(") throws SyntaxError',
        { '(': 2 },
        /SyntaxError|Invalid regular expression/,
      ],
      [
        'a rank_pattern rank of 1e9 throws RangeError (typed array length)',
        { fc1: 1e9 },
        /RangeError|Invalid typed array length/,
      ],
    ];
    for (const [what, pattern, raw] of patternCases) {
      it(`${what} instead of a PeftConfigError`, async () => {
        const [source] = await saveSourceAdapters();
        const config = JSON.parse(new TextDecoder().decode(source.files.get(ADAPTER_CONFIG_FILE)!));
        const store = new MemoryAdapterStore();
        store.files.set(ADAPTER_WEIGHTS_FILE, source.files.get(ADAPTER_WEIGHTS_FILE)!);
        store.files.set(
          ADAPTER_CONFIG_FILE,
          new TextEncoder().encode(JSON.stringify({ ...config, rank_pattern: pattern })),
        );
        const base = makeBase();
        const error = await PeftModel.fromPretrained(base, store).then(
          (peft) => (peft.unload(), null),
          (e) => e,
        );
        base.dispose();
        expect(String(error)).not.toMatch(raw);
        expect(error).toBeInstanceOf(PeftError);
      });
    }
  },
  { only: ['cpu'] },
);
