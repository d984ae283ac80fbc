// The XNNPACK BatchMatMul on wasm's threaded build in Node, installed by selectBackend: a fresh
// process per thread count (the backend initialises once per process).
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const child = path.join(__dirname, 'wasm-batch-mat-mul.node-child.ts');
const wasmPackageJson = require.resolve('@tensorflow/tfjs-backend-wasm/package.json', {
  paths: [path.dirname(require.resolve('@tfjs-peft/test-utils'))],
});

interface ChildResult {
  threads: number;
  installedBySelectBackend: boolean;
  calls: number;
  maxRelative: number;
  tensors: number;
}

function runChild(threads: number): ChildResult {
  const result = spawnSync(process.execPath, ['--import', 'tsx', child, wasmPackageJson, String(threads)], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (result.status !== 0) throw new Error(`child exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout) as ChildResult;
}

describe('the XNNPACK BatchMatMul with wasm threads', () => {
  for (const threads of [1, 2]) {
    it(`selectBackend installs it; with ${threads} thread(s) attention's gradients equal the stock kernel's`, () => {
      const result = runChild(threads);
      expect(result.threads).toBe(threads);
      expect(result.installedBySelectBackend).toBe(true);
      expect(result.calls).toBe(6);
      expect(result.maxRelative).toBeLessThan(1e-5);
      expect(result.tensors).toBe(0);
    }, 130_000);
  }
});
