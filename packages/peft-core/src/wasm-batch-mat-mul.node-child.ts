// Run by wasm-batch-mat-mul.node.test.ts in a fresh Node process (the wasm backend initialises once
// per process): loads wasm with the thread count in argv through selectBackend, which installs the
// XNNPACK BatchMatMul, then compares attention's products and their gradients against the stock
// kernel and prints the largest relative difference and the products each kernel took.
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the gradients tfjs-core alone lacks in Node
import { selectBackend } from './select-backend';
import {
  unregisterWasmBatchMatMul,
  registerWasmBatchMatMul,
  wasmBatchMatMulCalls,
  wasmBatchMatMulRegistered,
} from './wasm-batch-mat-mul';

async function attention(): Promise<Float32Array[]> {
  const [batch, heads, length, depth] = [2, 4, 32, 24];
  const make = (seed: number) =>
    tf.tidy(() =>
      tf.reshape(
        tf.sin(tf.mul(tf.range(0, batch * heads * length * depth, 1, 'float32'), 0.3 + seed * 0.1)),
        [batch, heads, length, depth],
      ),
    );
  const [q, k, v, w] = [make(1), make(2), make(3), make(4)];
  const loss = (qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor) =>
    tf.sum(tf.mul(tf.matMul(tf.softmax(tf.matMul(qi, ki, false, true)), vi), w));
  const grads = tf.grads(loss)([q, k, v]);
  const values = await Promise.all(grads.map((g) => g.data() as Promise<Float32Array>));
  tf.dispose([q, k, v, w, ...grads]);
  return values;
}

async function main(): Promise<void> {
  const [wasmPackageJson, threadsArg] = process.argv.slice(2);
  const wasm = createRequire(wasmPackageJson!)('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths(path.join(path.dirname(wasmPackageJson!), 'dist') + path.sep);
  await selectBackend('wasm', () => undefined, { wasm, wasmThreads: Number(threadsArg) });
  const installedBySelectBackend = wasmBatchMatMulRegistered();
  const before = wasmBatchMatMulCalls();
  const ours = await attention();
  const calls = wasmBatchMatMulCalls().xnnpack - before.xnnpack;
  unregisterWasmBatchMatMul();
  const stock = await attention();
  registerWasmBatchMatMul();
  let maxRelative = 0;
  for (let i = 0; i < stock.length; i++) {
    const scale = Math.max(...Array.from(stock[i]!, Math.abs));
    for (let j = 0; j < stock[i]!.length; j++) {
      maxRelative = Math.max(maxRelative, Math.abs(ours[i]![j]! - stock[i]![j]!) / scale);
    }
  }
  process.stdout.write(
    JSON.stringify({
      threads: wasm.getThreadsCount(),
      installedBySelectBackend,
      calls,
      maxRelative,
      tensors: tf.memory().numTensors,
    }),
  );
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(String(error instanceof Error ? error.stack : JSON.stringify(error)));
  process.exit(1);
});
