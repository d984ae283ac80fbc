// wasm multi-threaded in Node through selectBackend's loader for tfjs-backend-wasm's threaded
// build: a fresh process per thread count (the backend initialises once per process).
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import path from 'node:path';
import { PeftConfigError } from './errors';
import {
  defaultWasmThreadCount,
  MAX_WASM_THREADS,
  setWasmThreadCount,
  wasmThreadCount,
} from './wasm-threads';

const child = path.join(__dirname, 'wasm-threads.node-child.ts');
const wasmPackageJson = require.resolve('@tensorflow/tfjs-backend-wasm/package.json', {
  paths: [path.dirname(require.resolve('@tfjs-peft/test-utils'))],
});

function runChild(threads: number): { backend: string; threads: number; maxDiff: number } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', child, wasmPackageJson, String(threads)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (result.status !== 0) throw new Error(`child exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout);
}

describe('wasm threads in Node', () => {
  for (const threads of [1, 2, 3]) {
    it(`selectBackend('wasm', log, { wasm, wasmThreads: ${threads} }) runs ${threads} thread(s), products exact`, () => {
      const result = runChild(threads);
      expect(result.backend).toBe('wasm');
      expect(result.threads).toBe(threads);
      expect(result.maxDiff).toBeLessThan(1e-3);
    }, 130_000);
  }

  it('the thread count defaults to all cores (at most 8) and refuses what the build cannot run', () => {
    expect(wasmThreadCount()).toBe(defaultWasmThreadCount());
    expect(defaultWasmThreadCount()).toBe(Math.min(MAX_WASM_THREADS, cpus().length));
    expect(() => setWasmThreadCount(0)).toThrow(PeftConfigError);
    expect(() => setWasmThreadCount(MAX_WASM_THREADS + 1)).toThrow(PeftConfigError);
    expect(() => setWasmThreadCount(1.5)).toThrow(PeftConfigError);
    setWasmThreadCount(2);
    expect(wasmThreadCount()).toBe(2);
  });
});
