// Browser twin of prepare-backend.ts: same export, no Node modules. The browser test runner
// (tools/browser-tests) substitutes this file for prepare-backend.ts when it bundles tests.
import * as tf from '@tensorflow/tfjs-core';

declare global {
  // Where the runner serves the tfjs-backend-wasm `.wasm` binaries (a URL prefix ending in '/').
  var __TFJS_PEFT_WASM_PATH__: string | undefined;
}

const registerBackend: Record<string, () => Promise<unknown>> = {
  cpu: () => import('@tensorflow/tfjs-backend-cpu'),
  webgl: () => import('@tensorflow/tfjs-backend-webgl'),
  // Registers itself only when `navigator.gpu` exists (Chromium needs --enable-unsafe-webgpu headless).
  webgpu: () => import('@tensorflow/tfjs-backend-webgpu'),
  wasm: async () => {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    wasm.setWasmPaths(globalThis.__TFJS_PEFT_WASM_PATH__ ?? new URL('/wasm/', location.href).href);
  },
};

/** Registers the tfjs backend `name` in this browser and makes it the current backend. */
export async function prepareBackend(name: string): Promise<void> {
  const register = registerBackend[name];
  if (register === undefined) {
    throw new Error(
      `tfjs backend '${name}' is not available in the browser (known: ${Object.keys(registerBackend).join(', ')})`,
    );
  }
  await register();
  if (tf.findBackendFactory(name) === null) {
    const hint =
      name === 'webgpu' ? ' (navigator.gpu is missing: start Chromium with --enable-unsafe-webgpu)' : '';
    throw new Error(`tfjs backend '${name}' did not register${hint}`);
  }
  if (!(await tf.setBackend(name))) {
    throw new Error(`tfjs backend '${name}' failed to initialise in this browser`);
  }
  await tf.ready();
}
