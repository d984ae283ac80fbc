// Run by wasm-threads.node.test.ts in a fresh Node process (the jest process's wasm backend is
// already initialised single-threaded): loads wasm through selectBackend's loader with the thread
// count in argv, multiplies two matrices, and prints the threads tfjs reports and the largest
// difference from the same product computed in plain JavaScript.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from './select-backend';

async function main(): Promise<void> {
  const [wasmPackageJson, threadsArg] = process.argv.slice(2);
  const wasm = createRequire(wasmPackageJson)('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths(path.join(path.dirname(wasmPackageJson), 'dist') + path.sep);
  await selectBackend('wasm', () => undefined, { wasm, wasmThreads: Number(threadsArg) });
  const n = 96;
  const a = Array.from({ length: n * n }, (_, i) => Math.sin(i));
  const b = Array.from({ length: n * n }, (_, i) => Math.cos(i * 0.5));
  const product = tf.matMul(tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n]));
  const values = await product.data();
  let maxDiff = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let k = 0; k < n; k++) sum += Math.fround(a[i * n + k]) * Math.fround(b[k * n + j]);
      maxDiff = Math.max(maxDiff, Math.abs(sum - values[i * n + j]));
    }
  }
  process.stdout.write(
    JSON.stringify({ backend: tf.getBackend(), threads: wasm.getThreadsCount(), maxDiff }),
  );
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(String(error instanceof Error ? error.stack : JSON.stringify(error)));
  process.exit(1);
});
