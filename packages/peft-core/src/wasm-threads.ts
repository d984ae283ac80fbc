import * as tf from '@tensorflow/tfjs-core';
import { PeftConfigError, PeftError } from './errors';

/** What we use of `@tensorflow/tfjs-backend-wasm` (peft-core imports no backend: pass the module). */
export interface WasmBackendModule {
  setThreadsCount(threads: number): void;
  getThreadsCount(): number;
}

/**
 * tfjs-backend-wasm 4.22's threaded build starts 8 pthread workers at initialisation; XNNPACK's
 * pool cannot use more than that without spawning workers while the main thread waits on them.
 */
export const MAX_WASM_THREADS = 8;

let requestedThreads: number | null = null;

interface NodeBuiltins {
  fs: typeof import('node:fs');
  os: typeof import('node:os');
  path: typeof import('node:path');
}

/** Node's built-in modules without an import statement, so browser bundles never see them. */
function nodeBuiltins(): NodeBuiltins | null {
  const proc = (
    globalThis as { process?: { versions?: { node?: string }; getBuiltinModule?: (id: string) => unknown } }
  ).process;
  if (!proc?.versions?.node || typeof proc.getBuiltinModule !== 'function') return null;
  return {
    fs: proc.getBuiltinModule('fs') as NodeBuiltins['fs'],
    os: proc.getBuiltinModule('os') as NodeBuiltins['os'],
    path: proc.getBuiltinModule('path') as NodeBuiltins['path'],
  };
}

/** All logical cores (navigator.hardwareConcurrency, or os.cpus() in Node), at most MAX_WASM_THREADS. */
export function defaultWasmThreadCount(): number {
  const node = nodeBuiltins();
  const cores = node
    ? node.os.cpus().length
    : ((globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1);
  return Math.max(1, Math.min(MAX_WASM_THREADS, cores));
}

/**
 * The number of threads the wasm backend's matMuls and convolutions (XNNPACK) use, applied when
 * `selectBackend` next initialises wasm. Default: all cores (tfjs itself takes half, and none in
 * Node). Must be set before the wasm backend is first initialised in this process.
 */
export function setWasmThreadCount(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new PeftConfigError('wasmThreads', threads, `expected an integer from 1 to ${MAX_WASM_THREADS}`);
  }
  requestedThreads = threads;
}

/** The count setWasmThreadCount asked for, or the default (all cores). */
export function wasmThreadCount(): number {
  return requestedThreads ?? defaultWasmThreadCount();
}

/**
 * Makes the next initialisation of the wasm backend load its threaded build with `threads`
 * threads, in browsers (cross-origin isolated pages only) and in Node, and returns a function that
 * removes the Node loader hooks again (call it once `tf.ready()` resolved).
 *
 * Node refuses what tfjs hands its workers — `blob:` URLs for the worker script and a Blob for the
 * main script — and tfjs reports no thread support in Node at all. While installed, the loader
 * writes those two scripts to a temporary folder and gives the workers their paths (the worker
 * script gets a prologue defining the names the bundled main script expects from its module
 * scope), and reports the core count as 2 × threads while tfjs reads it (tfjs uses half the
 * cores). One thread: the plain SIMD build, no workers.
 */
export function prepareWasmThreads(wasm: WasmBackendModule, threads = wasmThreadCount()): () => void {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new PeftConfigError('wasmThreads', threads, `expected an integer from 1 to ${MAX_WASM_THREADS}`);
  }
  if (threads === 1) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    return () => undefined;
  }
  wasm.setThreadsCount(threads);
  const node = nodeBuiltins();
  if (node === null) return () => undefined; // a browser: tfjs's own detection decides (COOP/COEP)
  if (typeof SharedArrayBuffer === 'undefined') {
    throw new PeftError('wasm threads need SharedArrayBuffer, which this Node build lacks');
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  const { fs, os, path } = node;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-peft-wasm-threads-'));
  const mainScript = path.join(dir, 'wasm-backend-main.cjs');
  const workerScript = path.join(dir, 'wasm-backend-worker.cjs');
  const texts = new WeakMap<Blob, string>();
  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const originalCpus = os.cpus;
  globalThis.Blob = class RecordingBlob extends OriginalBlob {
    constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      if (!Array.isArray(parts) || !parts.every((p) => typeof p === 'string')) return;
      const text = parts.join('');
      texts.set(this, text);
      if (text.startsWith('var WasmBackendModuleThreadedSimd')) fs.writeFileSync(mainScript, text);
    }
  };
  URL.createObjectURL = (object: Blob | MediaSource) => {
    const text = object instanceof OriginalBlob ? texts.get(object) : undefined;
    if (text === undefined || !text.includes('WasmBackendModuleThreadedSimd(Module)')) {
      return originalCreateObjectURL(object);
    }
    if (!fs.existsSync(workerScript)) fs.writeFileSync(workerScript, workerPrologue(mainScript) + text);
    return workerScript;
  };
  os.cpus = () => {
    const cpus = originalCpus();
    while (cpus.length < 2 * threads) cpus.push(cpus[0]);
    return cpus;
  };
  return () => {
    globalThis.Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    os.cpus = originalCpus;
  };
}

/**
 * Runs first in every worker: defines what the bundled main script reads from tfjs's module scope
 * (the Node modules it required, the global object, its own path, three array helpers) and hands
 * the worker the main script's path where tfjs sends a Blob.
 */
function workerPrologue(mainScript: string): string {
  const helpers = [
    `require$$0: require('fs'), require$$1: require('path'), require$$3: require('perf_hooks'), require$$4: require('os')`,
    `commonjsGlobal: globalThis, _scriptDir: ${JSON.stringify(mainScript)}`,
    `__values: (o) => o[Symbol.iterator]()`,
    `__read: (o, n) => { const out = []; const it = o[Symbol.iterator](); let r; while ((n === undefined || n-- > 0) && !(r = it.next()).done) out.push(r.value); return out; }`,
    `__spreadArray: (to, from) => to.concat(Array.prototype.slice.call(from))`,
  ];
  return [
    `'use strict';`,
    `Object.assign(globalThis, { ${helpers.join(', ')} });`,
    `const tfjsPeftPort = require('worker_threads').parentPort;`,
    `const tfjsPeftOn = tfjsPeftPort.on.bind(tfjsPeftPort);`,
    `tfjsPeftPort.on = (event, handler) => tfjsPeftOn(event, event !== 'message' ? handler : (data) => {`,
    `  if (data && data.cmd === 'load' && typeof data.urlOrBlob !== 'string') data.urlOrBlob = ${JSON.stringify(mainScript)};`,
    `  handler(data);`,
    `});`,
    '',
  ].join('\n');
}
