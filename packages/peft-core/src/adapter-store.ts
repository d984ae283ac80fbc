import { AdapterIOError, AdapterNameError } from './errors';

/**
 * Where adapter folders live. A store reads and writes the files of one adapter folder
 * (`adapter_config.json`, `adapter_model.safetensors`, and named adapters in subfolders),
 * like tfjs's IO handlers do for models. `resolveAdapterStore` picks one from a URL scheme.
 */
export interface AdapterStore {
  /** For messages: the URL or a description. */
  readonly url: string;
  /** Returns the file's bytes, or null when it does not exist. Bounded by `maxBytes`. */
  readFile(path: string, maxBytes: number): Promise<Uint8Array | null>;
  /** Writes several files so that a reader sees either all of them or the previous state. */
  writeFiles(files: ReadonlyMap<string, Uint8Array>): Promise<void>;
}

/** Largest adapter file a store reads unless told otherwise: 2 GiB, below any engine's typed-array limit. */
export const DEFAULT_MAX_FILE_BYTES = 2 * 1024 ** 3 - 1;

/** Rejects adapter and subfolder names that could escape the adapter folder. */
export function checkAdapterName(name: string): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 128) {
    throw new AdapterNameError(String(name), 'must be a non-empty string of at most 128 characters');
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name) || name === '.' || name === '..' || name.includes('..')) {
    throw new AdapterNameError(
      name,
      'may only contain letters, digits, "_", "-" and "." and must not contain ".."',
    );
  }
  return name;
}

function checkRelativePath(path: string): string {
  const parts = path.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..') || path.startsWith('/') || path.includes('\\')) {
    throw new AdapterIOError(
      path,
      'file paths inside an adapter folder must be relative, without "..", "." or "\\"',
    );
  }
  return path;
}

/** Keeps adapter folders in memory: for tests, and for passing adapters between parts of an app. */
export class MemoryAdapterStore implements AdapterStore {
  readonly files = new Map<string, Uint8Array>();
  constructor(readonly url = 'memory://') {}

  async readFile(path: string, maxBytes: number): Promise<Uint8Array | null> {
    const file = this.files.get(checkRelativePath(path));
    if (file && file.byteLength > maxBytes)
      throw new AdapterIOError(`${this.url}/${path}`, `exceeds ${maxBytes} bytes`);
    return file ? file.slice() : null;
  }

  async writeFiles(files: ReadonlyMap<string, Uint8Array>): Promise<void> {
    for (const path of files.keys()) checkRelativePath(path);
    for (const [path, bytes] of files) this.files.set(path, bytes.slice());
  }
}

const memoryStores = new Map<string, MemoryAdapterStore>();

/** `file://` in Node: writes go to a temporary sibling folder, then each file is renamed into place, config last. */
class FileSystemAdapterStore implements AdapterStore {
  constructor(
    readonly url: string,
    private readonly root: string,
  ) {}

  private async modules() {
    // Imported lazily so browser bundles never see Node's modules.
    const fs = await import('node:fs/promises');
    const path = await import('node:path');
    return { fs, path };
  }

  async readFile(relative: string, maxBytes: number): Promise<Uint8Array | null> {
    const { fs, path } = await this.modules();
    const full = path.join(this.root, checkRelativePath(relative));
    let handle;
    try {
      handle = await fs.open(full, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new AdapterIOError(full, (error as Error).message);
    }
    try {
      const { size } = await handle.stat();
      if (size > maxBytes)
        throw new AdapterIOError(full, `is ${size} bytes, more than the limit of ${maxBytes}`);
      const buffer = new Uint8Array(size);
      let read = 0;
      while (read < size) {
        const { bytesRead } = await handle.read(buffer, read, size - read, read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      return read === size ? buffer : buffer.subarray(0, read);
    } catch (error) {
      // e.g. EISDIR when a folder sits where the file should be.
      if (error instanceof AdapterIOError) throw error;
      throw new AdapterIOError(full, (error as Error).message);
    } finally {
      await handle.close();
    }
  }

  async writeFiles(files: ReadonlyMap<string, Uint8Array>): Promise<void> {
    const { fs, path } = await this.modules();
    const staging = path.join(
      path.dirname(path.resolve(this.root)),
      `.${path.basename(path.resolve(this.root))}.tmp-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    );
    for (const relative of files.keys()) checkRelativePath(relative);
    // Files replaced so far, with where their previous versions were moved: undone if a later step fails.
    const placed: Array<{ target: string; previous: string | null }> = [];
    try {
      for (const [relative, bytes] of files) {
        const target = path.join(staging, 'new', relative);
        await fs.mkdir(path.dirname(target), { recursive: true });
        await fs.writeFile(target, bytes);
      }
      // Config files last: a folder without its adapter_config.json is never taken for an adapter.
      const order = [...files.keys()].sort(
        (a, b) => Number(a.endsWith('.json')) - Number(b.endsWith('.json')),
      );
      for (const relative of order) {
        const target = path.join(this.root, relative);
        await fs.mkdir(path.dirname(target), { recursive: true });
        let previous: string | null = path.join(staging, 'previous', relative);
        await fs.mkdir(path.dirname(previous), { recursive: true });
        try {
          await fs.rename(target, previous);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
          previous = null;
        }
        placed.push({ target, previous });
        await fs.rename(path.join(staging, 'new', relative), target);
      }
    } catch (error) {
      // Put the previous files back, newest first, so a reader sees the adapter as it was.
      for (const { target, previous } of placed.reverse()) {
        await fs.rm(target, { recursive: true, force: true }).catch(() => undefined);
        if (previous) await fs.rename(previous, target).catch(() => undefined);
      }
      throw new AdapterIOError(this.url, `could not write the adapter: ${(error as Error).message}`);
    } finally {
      // Cleaning up must never hide the real error (rm throws ENOTDIR below a regular file).
      await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** `http://` and `https://`: read-only, with the response size bounded before and while it is read. */
class HttpAdapterStore implements AdapterStore {
  constructor(readonly url: string) {}

  async readFile(path: string, maxBytes: number): Promise<Uint8Array | null> {
    const url = `${this.url.replace(/\/+$/, '')}/${checkRelativePath(path)}`;
    const response = await fetch(url);
    if (response.status === 404) return null;
    if (!response.ok) throw new AdapterIOError(url, `HTTP ${response.status}`);
    const declared = Number(response.headers.get('content-length') ?? NaN);
    if (declared > maxBytes)
      throw new AdapterIOError(url, `declares ${declared} bytes, more than ${maxBytes}`);
    const reader = response.body?.getReader();
    if (!reader) return new Uint8Array(await response.arrayBuffer());
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel();
        throw new AdapterIOError(url, `is larger than ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
    const out = new Uint8Array(total);
    let offset = 0;
    for (const c of chunks) {
      out.set(c, offset);
      offset += c.byteLength;
    }
    return out;
  }

  async writeFiles(): Promise<void> {
    throw new AdapterIOError(this.url, 'http(s) URLs can be loaded from, not saved to');
  }
}

/** `localstorage://key`: each file base64-encoded under `tfjs-peft/<key>/<path>`; the manifest is written last. */
class LocalStorageAdapterStore implements AdapterStore {
  constructor(
    readonly url: string,
    private readonly key: string,
  ) {}

  private storage(): Storage {
    if (typeof localStorage === 'undefined')
      throw new AdapterIOError(this.url, 'localStorage is not available here');
    return localStorage;
  }

  async readFile(path: string, maxBytes: number): Promise<Uint8Array | null> {
    const text = this.storage().getItem(`tfjs-peft/${this.key}/${checkRelativePath(path)}`);
    if (text === null) return null;
    if ((text.length * 3) / 4 > maxBytes)
      throw new AdapterIOError(this.url, `${path} exceeds ${maxBytes} bytes`);
    return base64ToBytes(text);
  }

  async writeFiles(files: ReadonlyMap<string, Uint8Array>): Promise<void> {
    const storage = this.storage();
    // Items written so far, with the values they replaced: a failed save puts those back, so the
    // previous adapter at this key survives (removing the new items alone would delete its weights).
    const written: Array<{ item: string; previous: string | null }> = [];
    const order = [...files.keys()].sort((a, b) => Number(a.endsWith('.json')) - Number(b.endsWith('.json')));
    for (const path of order) checkRelativePath(path);
    try {
      for (const path of order) {
        const item = `tfjs-peft/${this.key}/${path}`;
        const previous = storage.getItem(item);
        storage.setItem(item, bytesToBase64(files.get(path)!));
        written.push({ item, previous });
      }
    } catch (error) {
      for (const { item, previous } of written.reverse()) {
        storage.removeItem(item);
        // The previous value fitted before this save began, and the new one is gone again.
        if (previous !== null) storage.setItem(item, previous);
      }
      throw new AdapterIOError(this.url, `could not write the adapter: ${(error as Error).message}`);
    }
  }
}

/** `indexeddb://name`: all files of one save in one transaction, so a failed save changes nothing. */
class IndexedDbAdapterStore implements AdapterStore {
  constructor(
    readonly url: string,
    private readonly key: string,
  ) {}

  private open(): Promise<IDBDatabase> {
    if (typeof indexedDB === 'undefined')
      throw new AdapterIOError(this.url, 'IndexedDB is not available here');
    return new Promise((resolve, reject) => {
      const request = indexedDB.open('tfjs-peft', 1);
      request.onupgradeneeded = () => request.result.createObjectStore('files');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(new AdapterIOError(this.url, String(request.error)));
    });
  }

  async readFile(path: string, maxBytes: number): Promise<Uint8Array | null> {
    const db = await this.open();
    try {
      const value = await new Promise<unknown>((resolve, reject) => {
        const request = db
          .transaction('files', 'readonly')
          .objectStore('files')
          .get(`${this.key}/${checkRelativePath(path)}`);
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(new AdapterIOError(this.url, String(request.error)));
      });
      if (value == null) return null;
      if (!(value instanceof Uint8Array))
        throw new AdapterIOError(this.url, `${path} is not stored as bytes`);
      if (value.byteLength > maxBytes)
        throw new AdapterIOError(this.url, `${path} exceeds ${maxBytes} bytes`);
      return value;
    } finally {
      db.close();
    }
  }

  async writeFiles(files: ReadonlyMap<string, Uint8Array>): Promise<void> {
    const db = await this.open();
    try {
      await new Promise<void>((resolve, reject) => {
        const transaction = db.transaction('files', 'readwrite');
        const store = transaction.objectStore('files');
        for (const [path, bytes] of files) store.put(bytes.slice(), `${this.key}/${checkRelativePath(path)}`);
        transaction.oncomplete = () => resolve();
        transaction.onerror = () => reject(new AdapterIOError(this.url, String(transaction.error)));
        transaction.onabort = () =>
          reject(new AdapterIOError(this.url, String(transaction.error ?? 'aborted')));
      });
    } finally {
      db.close();
    }
  }
}

/**
 * Picks the store for a URL: `file://` (Node), `indexeddb://`, `localstorage://` (browsers),
 * `http(s)://` (loading only), `memory://name` (in-process). A store object passes through.
 */
export function resolveAdapterStore(location: string | AdapterStore): AdapterStore {
  if (typeof location !== 'string') return location;
  const match = /^([a-z]+):\/\/(.*)$/i.exec(location);
  if (!match) {
    throw new AdapterIOError(
      location,
      'expected a URL with a scheme: file://, indexeddb://, localstorage://, http(s):// or memory://',
    );
  }
  const [, scheme, rest] = match;
  switch (scheme.toLowerCase()) {
    case 'file':
      if (!rest) throw new AdapterIOError(location, 'file:// needs a folder path');
      return new FileSystemAdapterStore(location, rest);
    case 'http':
    case 'https':
      return new HttpAdapterStore(location);
    case 'localstorage':
      return new LocalStorageAdapterStore(location, rest);
    case 'indexeddb':
      return new IndexedDbAdapterStore(location, rest);
    case 'memory': {
      let store = memoryStores.get(rest);
      if (!store) memoryStores.set(rest, (store = new MemoryAdapterStore(location)));
      return store;
    }
    default:
      throw new AdapterIOError(location, `unsupported scheme "${scheme}://"`);
  }
}

function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000)
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
