import * as tf from '@tensorflow/tfjs-core';
import { PeftError } from './errors';

/** Fastest first, as measured on this project's machines (docs/architecture.md). */
export const BACKEND_PREFERENCE = ['tensorflow', 'webgpu', 'webgl', 'wasm', 'cpu'] as const;

/**
 * Picks the best registered backend (the user imports the backends they want: peft-core imports
 * none), or the named one, initialises it and says which it picked.
 */
export async function selectBackend(
  preferred?: string | readonly string[],
  log: (line: string) => void = console.log,
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
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        log(`[tfjs-peft] backend: ${name}${preferred === undefined ? ' (best available)' : ''}`);
        return name;
      }
      reasons.push(`${name}: failed to initialise`);
    } catch (error) {
      reasons.push(`${name}: ${(error as Error).message}`);
    }
  }
  throw new PeftError(`No usable tfjs backend among ${order.join(', ')}: ${reasons.join('; ')}`);
}
