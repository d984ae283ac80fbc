// Browser twin of prepare-backend.ts (same exports, no Node modules). The browser test runner
// (tools/browser-tests) substitutes this file for prepare-backend.ts when it bundles the tests.
import * as tf from '@tensorflow/tfjs-core';

declare global {
  // Where the runner serves tfjs-backend-wasm's `.wasm` binaries (a URL prefix ending in '/').
  var __TFJS_PEFT_WASM_PATH__: string | undefined;
}

const registerBackend: Record<string, () => Promise<unknown>> = {
  cpu: () => import('@tensorflow/tfjs-backend-cpu'),
  webgl: () => import('@tensorflow/tfjs-backend-webgl'),
  // Registers itself only when `navigator.gpu` exists (headless Chromium needs --enable-unsafe-webgpu).
  webgpu: () => import('@tensorflow/tfjs-backend-webgpu'),
  wasm: async () => {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(globalThis.__TFJS_PEFT_WASM_PATH__ ?? new URL('/wasm/', location.href).href);
  },
};

const unavailableCache = new Map<string, string | undefined>();

function computeUnavailableReason(name: string): string | undefined {
  switch (name) {
    case 'cpu':
      return undefined;
    case 'wasm':
      return typeof WebAssembly === 'object' ? undefined : 'this browser has no WebAssembly';
    case 'webgpu':
      return 'gpu' in navigator
        ? undefined
        : 'navigator.gpu is missing (headless Chromium needs --enable-unsafe-webgpu)';
    case 'webgl': {
      const gl = document.createElement('canvas').getContext('webgl2');
      if (gl === null) return 'no WebGL2 context (headless Chromium without a GPU needs SwiftShader)';
      gl.getExtension('WEBGL_lose_context')?.loseContext();
      return undefined;
    }
    default:
      return `${name} needs Node; not available in a browser`;
  }
}

/**
 * Synchronous check, used at test-collection time to turn an unavailable optional backend into a
 * loud skip. Returns the reason, or undefined when the backend looks usable.
 */
export function backendUnavailableReason(name: string): string | undefined {
  if (!unavailableCache.has(name)) unavailableCache.set(name, computeUnavailableReason(name));
  return unavailableCache.get(name);
}

/**
 * Makes the tfjs backend `name` registered and initialisable in this browser page; like the Node
 * version, it does not switch to it. Throws with a readable reason when it cannot be provided.
 */
export async function prepareBackend(name: string): Promise<void> {
  const register = registerBackend[name];
  const reason = backendUnavailableReason(name);
  if (register === undefined || reason !== undefined) {
    throw new Error(`tfjs backend '${name}' is not available: ${reason ?? 'unknown backend'}`);
  }
  await register();
  if (tf.findBackendFactory(name) === null) throw new Error(`tfjs backend '${name}' did not register`);
}
