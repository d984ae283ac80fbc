import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdapterIOError } from './errors';
import { resolveAdapterStore } from './adapter-store';

const text = (s: string) => new TextEncoder().encode(s);

describe('file:// adapter store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tfjs-peft-store-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes an adapter folder (with a named subfolder) and reads it back; a missing file is null', async () => {
    const store = resolveAdapterStore(`file://${dir}/adapter`);
    const files = new Map([
      ['adapter_model.safetensors', Uint8Array.from([1, 2, 3, 4])],
      ['adapter_config.json', text('{"peft_type":"LORA"}')],
      ['other/adapter_config.json', text('{"peft_type":"LORA","r":2}')],
    ]);
    await store.writeFiles(files);
    for (const [path, content] of files) expect(await store.readFile(path, 1000)).toEqual(content);
    expect(await store.readFile('nothing.json', 1000)).toBeNull();
    expect(await readFile(join(dir, 'adapter', 'other', 'adapter_config.json'), 'utf8')).toBe(
      '{"peft_type":"LORA","r":2}',
    );
    // Only the adapter folder is left next to it: no staging folder.
    expect(await readdir(dir)).toEqual(['adapter']);
    // A second save replaces the files.
    await store.writeFiles(new Map([['adapter_config.json', text('{"peft_type":"LORA","r":4}')]]));
    expect(await store.readFile('adapter_config.json', 1000)).toEqual(text('{"peft_type":"LORA","r":4}'));
  });

  it('enforces maxBytes on read', async () => {
    const store = resolveAdapterStore(`file://${dir}`);
    await store.writeFiles(new Map([['adapter_model.safetensors', new Uint8Array(100)]]));
    expect(await store.readFile('adapter_model.safetensors', 100)).toHaveLength(100);
    await expect(store.readFile('adapter_model.safetensors', 99)).rejects.toThrow(AdapterIOError);
    await expect(store.readFile('adapter_model.safetensors', 99)).rejects.toThrow(
      /is 100 bytes, more than the limit of 99/,
    );
  });

  it('reading a folder where a file should be fails with AdapterIOError', async () => {
    await mkdir(join(dir, 'adapter_config.json'));
    const store = resolveAdapterStore(`file://${dir}`);
    await expect(store.readFile('adapter_config.json', 1e6)).rejects.toThrow(AdapterIOError);
  });

  it('refuses relative paths that escape the folder', async () => {
    const store = resolveAdapterStore(`file://${dir}/adapter`);
    await expect(store.writeFiles(new Map([['../escaped.json', text('{}')]]))).rejects.toThrow(
      AdapterIOError,
    );
    await expect(store.readFile('../escaped.json', 10)).rejects.toThrow(AdapterIOError);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a save into an unwritable location fails with AdapterIOError and leaves no adapter and no temp folder', async () => {
    // Runs as root too: a path below a regular file cannot be created by anyone.
    await writeFile(join(dir, 'not-a-folder'), 'x');
    const store = resolveAdapterStore(`file://${dir}/not-a-folder/adapter`);
    await expect(
      store.writeFiles(
        new Map([
          ['adapter_model.safetensors', Uint8Array.from([1])],
          ['adapter_config.json', text('{}')],
        ]),
      ),
    ).rejects.toThrow(AdapterIOError);
    await expect(store.writeFiles(new Map([['adapter_config.json', text('{}')]]))).rejects.toThrow(
      /could not write the adapter/,
    );
    expect(await readdir(dir)).toEqual(['not-a-folder']);
    expect(await readFile(join(dir, 'not-a-folder'), 'utf8')).toBe('x');
  });

  it('a save that fails half-way leaves the previous adapter as it was', async () => {
    const store = resolveAdapterStore(`file://${dir}/adapter`);
    await store.writeFiles(
      new Map([
        ['adapter_model.safetensors', Uint8Array.from([1, 1])],
        ['adapter_config.json', text('{"old":true}')],
      ]),
    );
    // `sub` is a file, so the config below it cannot be placed: the failure comes after the weights moved in.
    await writeFile(join(dir, 'adapter', 'sub'), 'blocker');
    await expect(
      store.writeFiles(
        new Map([
          ['adapter_model.safetensors', Uint8Array.from([2, 2])],
          ['sub/adapter_config.json', text('{"new":true}')],
        ]),
      ),
    ).rejects.toThrow(AdapterIOError);
    expect(await store.readFile('adapter_model.safetensors', 10)).toEqual(Uint8Array.from([1, 1]));
    expect(await store.readFile('adapter_config.json', 100)).toEqual(text('{"old":true}'));
    expect((await readdir(join(dir, 'adapter'))).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'sub',
    ]);
    expect(await readdir(dir)).toEqual(['adapter']);
  });
});
