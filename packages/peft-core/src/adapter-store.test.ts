import { AdapterIOError, AdapterNameError } from './errors';
import {
  checkAdapterName,
  DEFAULT_MAX_FILE_BYTES,
  MemoryAdapterStore,
  resolveAdapterStore,
} from './adapter-store';

const bytes = (...values: number[]) => Uint8Array.from(values);

describe('checkAdapterName', () => {
  it('accepts plain names', () => {
    for (const name of ['default', 'other', 'my-adapter.v2', '_x', 'A1', 'x'.repeat(128)]) {
      expect(checkAdapterName(name)).toBe(name);
    }
  });

  it('rejects names that could escape the adapter folder, naming them', () => {
    for (const name of [
      '../x',
      '/abs',
      'a/b',
      '..',
      '.',
      '',
      'a..b',
      '.hidden',
      'a\\b',
      'C:x',
      'a b',
      'x'.repeat(129),
    ]) {
      expect(() => checkAdapterName(name)).toThrow(AdapterNameError);
    }
    expect(() => checkAdapterName('../x')).toThrow(/^Adapter "\.\.\/x": may only contain/);
    expect(() => checkAdapterName('')).toThrow(/must be a non-empty string/);
    expect(() => checkAdapterName(undefined as unknown as string)).toThrow(/Adapter "undefined"/);
  });
});

describe('MemoryAdapterStore', () => {
  it('writes then reads copies of the files; a missing file reads as null', async () => {
    const store = new MemoryAdapterStore();
    const config = bytes(1, 2, 3);
    await store.writeFiles(
      new Map([
        ['adapter_config.json', config],
        ['other/adapter_model.safetensors', bytes(9)],
      ]),
    );
    config[0] = 42;
    const read = await store.readFile('adapter_config.json', DEFAULT_MAX_FILE_BYTES);
    expect(read).toEqual(bytes(1, 2, 3));
    read![1] = 42;
    expect(await store.readFile('adapter_config.json', 100)).toEqual(bytes(1, 2, 3));
    expect(await store.readFile('other/adapter_model.safetensors', 1)).toEqual(bytes(9));
    expect(await store.readFile('missing.json', 100)).toBeNull();
  });

  it('enforces maxBytes on read', async () => {
    const store = new MemoryAdapterStore('memory://limits');
    await store.writeFiles(new Map([['adapter_model.safetensors', new Uint8Array(10)]]));
    expect(await store.readFile('adapter_model.safetensors', 10)).toHaveLength(10);
    await expect(store.readFile('adapter_model.safetensors', 9)).rejects.toThrow(AdapterIOError);
    await expect(store.readFile('adapter_model.safetensors', 9)).rejects.toThrow(
      'memory://limits/adapter_model.safetensors: exceeds 9 bytes',
    );
  });

  it('refuses paths that escape the folder, and then writes nothing at all', async () => {
    const store = new MemoryAdapterStore();
    for (const path of ['../x', '/abs', 'a//b', 'a/./b', 'a\\b', '', 'a/..']) {
      await expect(
        store.writeFiles(
          new Map([
            ['adapter_config.json', bytes(1)],
            [path, bytes(2)],
          ]),
        ),
      ).rejects.toThrow(AdapterIOError);
      await expect(store.readFile(path, 10)).rejects.toThrow(AdapterIOError);
    }
    expect(store.files.size).toBe(0);
  });
});

describe('resolveAdapterStore', () => {
  it('memory:// stores are shared by name, and different names are different stores', async () => {
    const a = resolveAdapterStore('memory://shared-by-name');
    await a.writeFiles(new Map([['adapter_config.json', bytes(7)]]));
    const again = resolveAdapterStore('memory://shared-by-name');
    expect(again).toBe(a);
    expect(await again.readFile('adapter_config.json', 10)).toEqual(bytes(7));
    const other = resolveAdapterStore('memory://another-name');
    expect(other).not.toBe(a);
    expect(await other.readFile('adapter_config.json', 10)).toBeNull();
  });

  it('passes a store object through', () => {
    const store = new MemoryAdapterStore();
    expect(resolveAdapterStore(store)).toBe(store);
  });

  it('refuses locations without a known scheme, naming them', () => {
    expect(() => resolveAdapterStore('adapters/mine')).toThrow(AdapterIOError);
    expect(() => resolveAdapterStore('adapters/mine')).toThrow(
      /^adapters\/mine: expected a URL with a scheme/,
    );
    expect(() => resolveAdapterStore('ftp://host/x')).toThrow('unsupported scheme "ftp://"');
    expect(() => resolveAdapterStore('file://')).toThrow('file:// needs a folder path');
  });

  it('http(s) stores are read-only; browser stores say when they are unavailable', async () => {
    await expect(resolveAdapterStore('https://example.invalid/a').writeFiles(new Map())).rejects.toThrow(
      /can be loaded from, not saved to/,
    );
    await expect(resolveAdapterStore('HTTP://example.invalid/a').readFile('../x', 1)).rejects.toThrow(
      AdapterIOError,
    );
    if (typeof localStorage === 'undefined') {
      await expect(
        resolveAdapterStore('localstorage://a').readFile('adapter_config.json', 1),
      ).rejects.toThrow('localstorage://a: localStorage is not available here');
    }
    if (typeof indexedDB === 'undefined') {
      await expect(resolveAdapterStore('indexeddb://a').readFile('adapter_config.json', 1)).rejects.toThrow(
        'indexeddb://a: IndexedDB is not available here',
      );
    }
  });
});
