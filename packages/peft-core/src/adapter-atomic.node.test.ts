// Atomic loads and saves, at the model level: a load that fails half way leaves every weight bit
// for bit, every trainable flag, the layers and the adapters as they were; a save that fails half
// way leaves the previous adapter loadable and unchanged, and no temporary folder; names that try to
// escape the adapter folder are refused. LoRA is imported from its sources by path (core must not
// depend on a method package).
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  describeEachBackend,
  expectWeightsBitIdentical,
  joinSafetensors,
  snapshotWeights,
  splitSafetensors,
} from '@tfjs-peft/test-utils';
import { LoraConfig } from '../../peft-lora/src/index';
import { MemoryAdapterStore, type AdapterStore } from './adapter-store';
import { NonFiniteAdapterValueError } from './adapter-validation';
import { AdapterIOError, AdapterMismatchError, AdapterNameError, PeftError } from './errors';
import { getPeftModel } from './get-peft-model';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PeftModel } from './peft-model';

// Fault injection for file:// saves: the store reads node:fs/promises lazily and keeps the module it
// got, so the spies are installed before any store call and stay; `faults` decides per call.
// The module object itself (an `import * as` namespace would be a copy).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fsPromises = require('node:fs/promises') as typeof import('node:fs/promises');
const faults: { writeFile?: (n: number) => Error | undefined; rename?: (n: number) => Error | undefined } =
  {};
const calls = { writeFile: 0, rename: 0 };
const realWriteFile = fsPromises.writeFile;
const realRename = fsPromises.rename;
jest.spyOn(fsPromises, 'writeFile').mockImplementation(((...args: Parameters<typeof realWriteFile>) => {
  const error = faults.writeFile?.(++calls.writeFile);
  return error ? Promise.reject(error) : realWriteFile(...args);
}) as typeof realWriteFile);
jest.spyOn(fsPromises, 'rename').mockImplementation(((...args: Parameters<typeof realRename>) => {
  const error = faults.rename?.(++calls.rename);
  return error ? Promise.reject(error) : realRename(...args);
}) as typeof realRename);

function errnoError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

function makeBase(seed = 1): tfl.LayersModel {
  const init = (s: number) => tfl.initializers.glorotUniform({ seed: seed * 10 + s });
  return tfl.sequential({
    layers: [
      tfl.layers.dense({
        name: 'fc1',
        units: 10,
        activation: 'relu',
        inputShape: [6],
        kernelInitializer: init(1),
      }),
      tfl.layers.dense({ name: 'fc2', units: 8, activation: 'tanh', kernelInitializer: init(2) }),
      tfl.layers.dense({ name: 'fc3', units: 7, activation: 'tanh', kernelInitializer: init(3) }),
      tfl.layers.dense({ name: 'head', units: 3, kernelInitializer: init(4) }),
    ],
  });
}

const loraConfig = (extra: Partial<ConstructorParameters<typeof LoraConfig>[0]> = {}) =>
  new LoraConfig({
    r: 2,
    loraAlpha: 4,
    targetModules: ['fc1', 'fc2', 'fc3'],
    initLoraWeights: false,
    ...extra,
  });

/** A saved adapter's files (random LoRA weights), written by a throw-away model. */
async function savedAdapter(config = loraConfig(), seed = 2): Promise<Map<string, Uint8Array>> {
  const base = makeBase(seed);
  const peft = getPeftModel(base, config);
  const store = new MemoryAdapterStore();
  await peft.saveAdapter(store);
  peft.unload();
  base.dispose();
  return new Map(store.files);
}

function storeWith(files: ReadonlyMap<string, Uint8Array>): MemoryAdapterStore {
  const store = new MemoryAdapterStore();
  for (const [path, bytes] of files) store.files.set(path, bytes);
  return store;
}

/** Everything a failed load must leave as it was. */
async function modelState(peft: PeftModel | null, base: tfl.LayersModel) {
  const model = peft ? peft.model : base;
  return {
    weights: await snapshotWeights(model),
    baseWeights: await snapshotWeights(base),
    flags: JSON.stringify(model.weights.map((w) => [w.name, w.trainable])),
    layerFlags: JSON.stringify(base.layers.map((l) => [l.name, l.trainable])),
    layers: JSON.stringify(model.layers.map((l) => [l.name, l.getClassName()])),
    adapters: peft ? JSON.stringify([Object.keys(peft.peftConfig), peft.activeAdapters]) : '',
    tensors: tf.memory().numTensors,
    bytes: tf.memory().numBytes,
  };
}

async function expectStateUnchanged(
  before: Awaited<ReturnType<typeof modelState>>,
  peft: PeftModel | null,
  base: tfl.LayersModel,
) {
  const after = await modelState(peft, base);
  expectWeightsBitIdentical(before.weights, after.weights);
  expectWeightsBitIdentical(before.baseWeights, after.baseWeights);
  expect(after.flags).toBe(before.flags);
  expect(after.layerFlags).toBe(before.layerFlags);
  expect(after.layers).toBe(before.layers);
  expect(after.adapters).toBe(before.adapters);
  expect(after.tensors).toBe(before.tensors);
  expect(after.bytes).toBe(before.bytes);
}

/** Rewrites the safetensors file of an adapter, changing one tensor's header entry or values. */
function editTensor(
  files: Map<string, Uint8Array>,
  key: string,
  edit: (entry: { dtype: string; shape: number[]; data_offsets: number[] }, data: DataView) => void,
): Map<string, Uint8Array> {
  const { header, data } = splitSafetensors(files.get(ADAPTER_WEIGHTS_FILE)!);
  edit(
    header[key],
    new DataView(
      data.buffer,
      data.byteOffset + header[key].data_offsets[0],
      header[key].data_offsets[1] - header[key].data_offsets[0],
    ),
  );
  return new Map(files).set(ADAPTER_WEIGHTS_FILE, joinSafetensors(JSON.stringify(header), data));
}

function dropTensor(files: Map<string, Uint8Array>, key: string): Map<string, Uint8Array> {
  const { header, data } = splitSafetensors(files.get(ADAPTER_WEIGHTS_FILE)!);
  const [begin, end] = header[key].data_offsets;
  delete header[key];
  for (const name of Object.keys(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = header[name].data_offsets;
    if (b >= end) header[name].data_offsets = [b - (end - begin), e - (end - begin)];
  }
  const rest = new Uint8Array(data.length - (end - begin));
  rest.set(data.subarray(0, begin));
  rest.set(data.subarray(end), begin);
  return new Map(files).set(ADAPTER_WEIGHTS_FILE, joinSafetensors(JSON.stringify(header), rest));
}

const KEYS = {
  middle: 'base_model.model.fc2.lora_A.weight',
  last: 'base_model.model.fc3.lora_B.weight',
};

describeEachBackend('a load that fails half way changes nothing', () => {
  const broken: Array<
    [string, (files: Map<string, Uint8Array>) => Map<string, Uint8Array>, new (...a: any[]) => PeftError]
  > = [
    [
      'a shape mismatch in the last module',
      (f) => editTensor(f, KEYS.last, (e) => (e.shape = [e.shape[1], e.shape[0]])),
      AdapterMismatchError,
    ],
    ['a missing key', (f) => dropTensor(f, KEYS.middle), AdapterMismatchError],
    [
      'a bad tensor in the middle (data that does not match its shape)',
      (f) => editTensor(f, KEYS.middle, (e) => (e.shape = [e.shape[0] + 1, e.shape[1]])),
      PeftError,
    ],
    [
      'an unexpected key',
      (f) =>
        editTensor(f, KEYS.middle, () => undefined).set(
          ADAPTER_WEIGHTS_FILE,
          renameKey(f, KEYS.last, 'base_model.model.fc9.lora_B.weight'),
        ),
      AdapterMismatchError,
    ],
  ];

  for (const [what, breakIt, errorClass] of broken) {
    it(`loadAdapter beside a trained, merged and an active adapter: ${what}`, async () => {
      const base = makeBase();
      const peft = getPeftModel(base, loraConfig());
      peft.addAdapter('second', loraConfig());
      peft.setAdapter(['default', 'second']);
      // Give the adapters non-trivial values and merge one, so 'unchanged' covers merged kernels.
      await peft.mergeAdapter(['second']);
      const files = breakIt(await savedAdapter());
      const before = await modelState(peft, base);
      await expect(peft.loadAdapter(storeWith(files), 'third', { isTrainable: true })).rejects.toThrow(
        errorClass,
      );
      await expectStateUnchanged(before, peft, base);
      // Still usable: the merged adapter unmerges bit-exactly and a good file loads.
      peft.unmergeAdapter();
      await peft.loadAdapter(storeWith(await savedAdapter()), 'fourth');
      expect(Object.keys(peft.peftConfig)).toEqual(['default', 'second', 'fourth']);
      peft.unload();
      base.dispose();
    });

    it(`fromPretrained on a fresh base: ${what}`, async () => {
      const base = makeBase();
      const files = breakIt(await savedAdapter());
      const before = await modelState(null, base);
      await expect(PeftModel.fromPretrained(base, storeWith(files))).rejects.toThrow(errorClass);
      await expectStateUnchanged(before, null, base);
      base.dispose();
    });
  }

  // A rolled-back adapter releases its weight names (releaseLayerWeights), so the same name loads again.
  it('after a failed load beside other adapters, the corrected file loads under the same name', async () => {
    const base = makeBase();
    const peft = getPeftModel(base, loraConfig());
    const bad = dropTensor(await savedAdapter(), KEYS.middle);
    await expect(peft.loadAdapter(storeWith(bad), 'third')).rejects.toThrow(AdapterMismatchError);
    try {
      await peft.loadAdapter(storeWith(await savedAdapter()), 'third');
    } finally {
      peft.unload();
      base.dispose();
    }
  });

  it('a DoRA adapter with a bad magnitude (last tensor read) changes nothing', async () => {
    const base = makeBase();
    const peft = getPeftModel(base, loraConfig({ useDora: true }));
    const files = editTensor(
      await savedAdapter(loraConfig({ useDora: true })),
      'base_model.model.fc3.lora_magnitude_vector',
      (e) => (e.shape = [1, e.shape[0]]),
    );
    const before = await modelState(peft, base);
    await expect(peft.loadAdapter(storeWith(files), 'other')).rejects.toThrow(AdapterMismatchError);
    await expectStateUnchanged(before, peft, base);
    peft.unload();
    base.dispose();
  });

  it('NaN in the middle tensor is refused by the validation loadAdapter runs before writing', async () => {
    const files = editTensor(await savedAdapter(), KEYS.middle, (_e, data) => data.setFloat32(4, NaN, true));
    // The validation itself (adapter-validation.ts), on the decoded file the loader sees:
    const { parseSafetensors } = await import('./safetensors');
    const { assertFiniteAdapterTensors } = await import('./adapter-validation');
    expect(() =>
      assertFiniteAdapterTensors(parseSafetensors(files.get(ADAPTER_WEIGHTS_FILE)!).tensors),
    ).toThrow(/tensor "base_model\.model\.fc2\.lora_A\.weight" holds NaN at element 1/);
  });

  // loadAdapter runs assertFiniteAdapterTensors on the parsed file before touching the model.
  it('fromPretrained refuses NaN in an adapter file, naming the key, and changes nothing', async () => {
    const base = makeBase();
    const files = editTensor(await savedAdapter(), KEYS.middle, (_e, data) => data.setFloat32(4, NaN, true));
    const before = await modelState(null, base);
    const result = await PeftModel.fromPretrained(base, storeWith(files)).then(
      (peft) => (peft.unload(), null),
      (e) => e,
    );
    await expectStateUnchanged(before, null, base);
    base.dispose();
    expect(result).toBeInstanceOf(NonFiniteAdapterValueError);
    expect((result as NonFiniteAdapterValueError).key).toBe(KEYS.middle);
  });
});

function renameKey(files: Map<string, Uint8Array>, from: string, to: string): Uint8Array {
  const { header, data } = splitSafetensors(files.get(ADAPTER_WEIGHTS_FILE)!);
  header[to] = header[from];
  delete header[from];
  return joinSafetensors(JSON.stringify(header), data);
}

describeEachBackend('adapter names and subfolders cannot escape the adapter folder', () => {
  const hostile = [
    '../x',
    '../../etc/passwd',
    '/etc/passwd',
    'a/../../b',
    'a/b',
    'a\\..\\b',
    '..\\x',
    'C:\\x',
    'a\0b',
    '..',
    '.',
    '',
    '~/x',
    'a..b',
    ' x',
  ];

  it('loadAdapter refuses them as adapter names and as subfolders, and changes nothing', async () => {
    const base = makeBase();
    const peft = getPeftModel(base, loraConfig());
    const store = storeWith(await savedAdapter());
    const before = await modelState(peft, base);
    for (const name of hostile) {
      await expect(peft.loadAdapter(store, name)).rejects.toThrow(AdapterNameError);
      await expect(peft.loadAdapter(store, 'ok', { subfolder: name === '' ? '/' : name })).rejects.toThrow(
        name === '' ? AdapterNameError : AdapterNameError,
      );
    }
    await expectStateUnchanged(before, peft, base);
    peft.unload();
    base.dispose();
  });

  it('addAdapter and getPeftModel refuse them, so saveAdapter can never write outside the folder', async () => {
    const base = makeBase();
    const peft = getPeftModel(base, loraConfig());
    for (const name of hostile) expect(() => peft.addAdapter(name, loraConfig())).toThrow(AdapterNameError);
    await expect(peft.saveAdapter(new MemoryAdapterStore(), { selectedAdapters: ['../x'] })).rejects.toThrow(
      AdapterNameError,
    );
    peft.unload();
    base.dispose();
  });

  it('stores refuse file paths that escape, with AdapterIOError', async () => {
    const store = new MemoryAdapterStore();
    for (const path of ['../x', '/abs', 'a/../../b', 'a\\b', './x', 'a//b']) {
      await expect(store.readFile(path, 10)).rejects.toThrow(AdapterIOError);
      await expect(store.writeFiles(new Map([[path, new Uint8Array(1)]]))).rejects.toThrow(AdapterIOError);
    }
    expect(store.files.size).toBe(0);
  });
});

describeEachBackend('a save that fails half way leaves no half-written adapter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tfjs-peft-atomic-'));
    calls.writeFile = calls.rename = 0;
  });
  afterEach(async () => {
    delete faults.writeFile;
    delete faults.rename;
    await rm(dir, { recursive: true, force: true });
  });

  async function folderFiles(root: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) {
        const full = join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name);
        out.set(full.slice(root.length + 1), (await readFile(full)).toString('base64'));
      }
    }
    return out;
  }

  /** A model with two adapters ('default' at the top level, 'other' in a subfolder) saved at `url`. */
  async function previousSave(url: string) {
    const base = makeBase();
    const peft = getPeftModel(base, loraConfig());
    peft.addAdapter('other', loraConfig({ r: 3 }));
    await peft.saveAdapter(url);
    const saved = {
      default: await snapshotWeights(peft.peftLayers().flatMap((l) => l.adapterVariables('default'))),
      other: await snapshotWeights(peft.peftLayers().flatMap((l) => l.adapterVariables('other'))),
    };
    return { base, peft, saved };
  }

  async function expectPreviousStillLoads(
    url: string,
    saved: Record<'default' | 'other', Awaited<ReturnType<typeof snapshotWeights>>>,
  ) {
    for (const [name, subfolder] of [
      ['default', undefined],
      ['other', 'other'],
    ] as const) {
      const base = makeBase(7);
      const loaded = await PeftModel.fromPretrained(base, url, { subfolder });
      const expected = saved[name];
      const got = await snapshotWeights(loaded.peftLayers().flatMap((l) => l.adapterVariables('default')));
      expect(got.map((w) => Buffer.from(w.bytes).toString('base64'))).toEqual(
        expected.map((w) => Buffer.from(w.bytes).toString('base64')),
      );
      loaded.unload();
      base.dispose();
    }
  }

  const scenarios: Array<[string, () => void]> = [
    [
      'the disk fills up on the second file staged (ENOSPC)',
      () =>
        (faults.writeFile = (n) => (n === 2 ? errnoError('ENOSPC', 'no space left on device') : undefined)),
    ],
    [
      'the disk fills up on the last file staged',
      () =>
        (faults.writeFile = (n) => (n === 4 ? errnoError('ENOSPC', 'no space left on device') : undefined)),
    ],
    // rename calls per file: move the previous version aside, move the new one in.
    [
      'moving the second file into place fails (EIO)',
      () => (faults.rename = (n) => (n === 4 ? errnoError('EIO', 'i/o error') : undefined)),
    ],
    [
      'moving the last file (a config) into place fails',
      () => (faults.rename = (n) => (n === 8 ? errnoError('EIO', 'i/o error') : undefined)),
    ],
    [
      'moving the previous config aside fails',
      () => (faults.rename = (n) => (n === 7 ? errnoError('EACCES', 'permission denied') : undefined)),
    ],
  ];

  for (const [what, inject] of scenarios) {
    it(`file://: ${what} → AdapterIOError, the previous adapter still loads unchanged, no temp folder`, async () => {
      const url = `file://${dir}/adapter`;
      const previous = await previousSave(url);
      const filesBefore = await folderFiles(join(dir, 'adapter'));
      // Train-like change so the new save differs from the old one.
      bumpAdapters(previous.peft);
      calls.writeFile = calls.rename = 0;
      inject();
      await expect(previous.peft.saveAdapter(url)).rejects.toThrow(AdapterIOError);
      delete faults.writeFile;
      delete faults.rename;
      expect(await folderFiles(join(dir, 'adapter'))).toEqual(filesBefore);
      expect(await readdir(dir)).toEqual(['adapter']);
      await expectPreviousStillLoads(url, previous.saved);
      previous.peft.unload();
      previous.base.dispose();
    });
  }

  it('file://: an unwritable location (a file where the folder should be) → AdapterIOError, nothing written', async () => {
    await writeFile(join(dir, 'blocker'), 'x');
    const base = makeBase();
    const peft = getPeftModel(base, loraConfig());
    await expect(peft.saveAdapter(`file://${dir}/blocker/adapter`)).rejects.toThrow(AdapterIOError);
    expect(await readdir(dir)).toEqual(['blocker']);
    expect(await readFile(join(dir, 'blocker'), 'utf8')).toBe('x');
    peft.unload();
    base.dispose();
  });

  it('localstorage://: the quota runs out after two files were replaced → the previous adapter still loads unchanged', async () => {
    const storage = new QuotaStorage();
    (globalThis as { localStorage?: unknown }).localStorage = storage;
    try {
      const url = 'localstorage://atomic';
      const previous = await previousSave(url);
      const itemsBefore = JSON.stringify([...storage.items].sort());
      bumpAdapters(previous.peft);
      // Room for the first (larger) weights file, not for the second.
      storage.quota = storage.usage() + 8;
      (previous.peft as PeftModel).addAdapter('third', loraConfig({ r: 4 }));
      await expect(previous.peft.saveAdapter(url)).rejects.toThrow(AdapterIOError);
      storage.quota = Infinity;
      previous.peft.deleteAdapter('third');
      expect(JSON.stringify([...storage.items].sort())).toBe(itemsBefore);
      await expectPreviousStillLoads(url, previous.saved);
      previous.peft.unload();
      previous.base.dispose();
    } finally {
      delete (globalThis as { localStorage?: unknown }).localStorage;
    }
  });

  it('a store that is not atomic itself: what saveAdapter hands it is one complete set of files', async () => {
    // saveAdapter builds every file first and calls writeFiles once, so a failure while collecting
    // (here: an adapter that cannot be saved) writes nothing at all.
    const writes: string[][] = [];
    const store: AdapterStore = {
      url: 'test://',
      readFile: async () => null,
      writeFiles: async (files) => void writes.push([...files.keys()]),
    };
    const base = makeBase();
    const peft = getPeftModel(base, loraConfig());
    peft.addAdapter('other', loraConfig());
    await expect(peft.saveAdapter(store, { selectedAdapters: ['default', 'missing'] })).rejects.toThrow(
      AdapterNameError,
    );
    expect(writes).toEqual([]);
    await peft.saveAdapter(store);
    expect(writes).toEqual([
      [
        ADAPTER_WEIGHTS_FILE,
        ADAPTER_CONFIG_FILE,
        `other/${ADAPTER_WEIGHTS_FILE}`,
        `other/${ADAPTER_CONFIG_FILE}`,
      ],
    ]);
    peft.unload();
    base.dispose();
  });
});

/** Changes every trainable adapter weight, so a new save differs from the previous one. */
function bumpAdapters(peft: PeftModel): void {
  for (const v of peft.trainableVariables) {
    const next = tf.add(v, 1);
    v.assign(next);
    next.dispose();
  }
}

/** A localStorage stand-in with a quota in characters, as browsers count it: setItem throws QuotaExceededError when full. */
class QuotaStorage {
  readonly items = new Map<string, string>();
  quota = Infinity;
  get length() {
    return this.items.size;
  }
  key(i: number) {
    return [...this.items.keys()][i] ?? null;
  }
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  usage(except?: string) {
    let total = 0;
    for (const [k, v] of this.items) if (k !== except) total += k.length + v.length;
    return total;
  }
  setItem(key: string, value: string) {
    if (this.usage(key) + key.length + String(value).length > this.quota) {
      throw Object.assign(new Error('The quota has been exceeded.'), { name: 'QuotaExceededError' });
    }
    this.items.set(key, String(value));
  }
  removeItem(key: string) {
    this.items.delete(key);
  }
  clear() {
    this.items.clear();
  }
}
