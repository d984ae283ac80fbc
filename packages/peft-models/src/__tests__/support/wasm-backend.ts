import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as path from 'node:path';

/** Makes wasm the active backend, with the .wasm files from the installed package. */
export async function useWasmBackend(): Promise<void> {
  const dist = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  setWasmPaths(`${dist}${path.sep}`);
  await tf.setBackend('wasm');
  await tf.ready();
}

export async function useCpuBackend(): Promise<void> {
  await import('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
  await tf.ready();
}
