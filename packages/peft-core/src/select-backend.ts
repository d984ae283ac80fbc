import * as tf from '@tensorflow/tfjs-core';
import { PeftError } from './errors';
import { registerWasmBatchMatMul } from './wasm-batch-mat-mul';
import { prepareWasmThreads, wasmThreadCount, type WasmBackendModule } from './wasm-threads';

export interface SelectBackendOptions {
  /**
   * The imported `@tensorflow/tfjs-backend-wasm` module. Given, wasm loads its threaded build — in
   * Node too, through prepareWasmThreads' loader — with `wasmThreads` threads.
   */
  wasm?: WasmBackendModule;
  /** Threads for wasm (1 to 8). Default: setWasmThreadCount's value, else all cores. */
  wasmThreads?: number;
  /**
   * Whether wasm runs batched and transposed matMuls through XNNPACK (registerWasmBatchMatMul;
   * attention's products, 4-8× faster than tfjs's own loop). Default true; false leaves tfjs's
   * kernel in place.
   */
  wasmBatchMatMul?: boolean;
}

/** Fastest first, as measured on this project's machines (docs/architecture.md). */
export const BACKEND_PREFERENCE = ['tensorflow', 'webgpu', 'webgl', 'wasm', 'cpu'] as const;

/**
 * Picks the best registered backend (the user imports the backends they want: peft-core imports
 * none), or the named one, initialises it and says which it picked. Pass the wasm module in
 * `options.wasm` to run wasm multi-threaded (all cores unless `wasmThreads` says otherwise).
 */
export async function selectBackend(
  preferred?: string | readonly string[],
  log: (line: string) => void = console.log,
  options: SelectBackendOptions = {},
): Promise<string> {
  const registered = Object.keys(tf.engine().registryFactory);
  const order =
    preferred === undefined
      ? [...BACKEND_PREFERENCE]
      : typeof preferred === 'string'
        ? [preferred]
        : [...preferred];
  const reasons: string[] = [];
  for (const name of order) {
    if (!registered.includes(name)) {
      reasons.push(`${name}: not registered (import its package)`);
      continue;
    }
    const threaded = name === 'wasm' && options.wasm !== undefined;
    let restore = () => undefined as void;
    try {
      if (threaded) restore = prepareWasmThreads(options.wasm!, options.wasmThreads ?? wasmThreadCount());
      if (await tf.setBackend(name)) {
        await tf.ready();
        if (name === 'wasm' && options.wasmBatchMatMul !== false) registerWasmBatchMatMul();
        const detail = threaded ? `, ${options.wasm!.getThreadsCount()} thread(s)` : '';
        log(`[tfjs-peft] backend: ${name}${detail}${preferred === undefined ? ' (best available)' : ''}`);
        return name;
      }
      reasons.push(`${name}: failed to initialise`);
    } catch (error) {
      reasons.push(`${name}: ${(error as Error).message}`);
    } finally {
      restore();
    }
  }
  throw new PeftError(`No usable tfjs backend among ${order.join(', ')}: ${reasons.join('; ')}`);
}
