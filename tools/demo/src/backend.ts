// Registers the backends this Node process can offer, then lets @tfjs-peft/core pick the best one.
//
// The backend packages are dependencies of @tfjs-peft/test-utils (cpu, wasm, and tfjs-node as an
// optional dependency whose native binding is built by tools/tfjs-node), so they are resolved from
// there. test-utils' own prepareBackend() cannot be called from here: it is not exported from the
// package and uses a bare `require`, which does not exist in an ES module run by tsx (see README).
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '@tfjs-peft/core';

const requireFromTestUtils = createRequire(import.meta.resolve('@tfjs-peft/test-utils'));

function packageDir(name: string): string {
  return path.dirname(requireFromTestUtils.resolve(`${name}/package.json`));
}

function firstLine(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] : String(error);
}

/** Why tfjs-node cannot be used here, or undefined when its native binding loads. */
function tensorflowUnavailable(): string | undefined {
  let dir: string;
  try {
    dir = packageDir('@tensorflow/tfjs-node');
  } catch {
    return '@tensorflow/tfjs-node is not installed';
  }
  const lib = path.join(dir, 'lib');
  const napi = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith('napi-v')) : undefined;
  const binding = napi && path.join(lib, napi, 'tfjs_binding.node');
  if (!binding || !existsSync(binding)) {
    return 'binding not built (pnpm --filter @tfjs-peft/test-utils build:tfjs-node)';
  }
  try {
    requireFromTestUtils(binding); // the native load fails here if libtensorflow is missing
    return undefined;
  } catch (error) {
    return firstLine(error);
  }
}

export interface BackendChoice {
  name: string;
  /** Backends that could not be registered, with the reason. */
  unavailable: Record<string, string>;
}

/** Registers cpu, wasm and (when built) tensorflow, then selects `preferred` or the best one. */
export async function chooseBackend(preferred: string | undefined, log: (line: string) => void): Promise<BackendChoice> {
  const unavailable: Record<string, string> = {};
  requireFromTestUtils('@tensorflow/tfjs-backend-cpu');
  try {
    const wasm = requireFromTestUtils('@tensorflow/tfjs-backend-wasm');
    // Threads need Workers that load blob: URLs, which Node refuses: the single-threaded SIMD build is used.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasm.setWasmPaths(path.join(packageDir('@tensorflow/tfjs-backend-wasm'), 'dist') + path.sep);
  } catch (error) {
    unavailable.wasm = firstLine(error);
  }
  const reason = tensorflowUnavailable();
  if (reason === undefined) {
    process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
    const before = tf.getBackend();
    const tfnode = requireFromTestUtils('@tensorflow/tfjs-node');
    if (tfnode.engine() !== tf.engine()) {
      unavailable.tensorflow = 'tfjs-node loaded a second copy of @tensorflow/tfjs-core';
      tf.removeBackend('tensorflow');
    } else if (before && before !== 'tensorflow') {
      await tf.setBackend(before); // importing tfjs-node switches to it; let selectBackend decide
    }
  } else {
    unavailable.tensorflow = reason;
  }
  for (const [name, why] of Object.entries(unavailable)) log(`[demo] backend ${name} unavailable: ${why}`);
  const name = await selectBackend(preferred, log);
  return { name, unavailable };
}
