// Node-specific backend preparation for the jest run. A browser runner substitutes this file
// (same exports) with a browser version, so every Node-only module (fs, path, child_process,
// tfjs-node, Dawn) is loaded lazily inside functions, through jest's own `require` so that
// tfjs-node shares the single @tensorflow/tfjs-core instance the tests use.
/* eslint-disable @typescript-eslint/no-require-imports */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendName } from './backend-selection';

interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<unknown | null>;
}
/** Dawn's native module (`webgpu` package; ESM-only, so its dist/<platform>-<arch>/dawn.node is required directly). */
interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
  /** Process-wide caches: the .node exports object is shared by every jest test file in a worker. */
  __tfjsPeftGpu?: GpuLike;
  __tfjsPeftProbe?: string | null;
}

const TFJS_NODE_BUILD_HINT =
  'tfjs-node binding not built (run pnpm --filter @tfjs-peft/test-utils build:tfjs-node)';
const DAWN_FLAGS = ['backend=opengles'];
const unavailableCache = new Map<BackendName, string | undefined>();

function packageDir(name: string): string {
  const path = require('node:path');
  return path.dirname(require.resolve(`${name}/package.json`));
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] : String(error);
}

/**
 * Sets a variable in the real process environment (the one native code reads with getenv).
 * Inside jest, `process.env` is a sandbox copy, so assigning to it does not reach Mesa/TensorFlow;
 * `process.loadEnvFile` (Node >= 20.12) writes to the real environment and never overrides a value
 * already set there.
 */
function setNativeEnv(name: string, value: string): void {
  if (process.env[name] === undefined) process.env[name] = value;
  const load = (process as { loadEnvFile?: (path: string) => void }).loadEnvFile;
  if (typeof load !== 'function') return;
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const file = path.join(os.tmpdir(), `tfjs-peft-env-${process.pid}-${name}`);
  fs.writeFileSync(file, `${name}=${value}\n`);
  try {
    load(file);
  } finally {
    fs.rmSync(file, { force: true });
  }
}

function dawnPath(): string {
  const path = require('node:path');
  return path.join(packageDir('webgpu'), 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
}

function loadDawn(): DawnModule {
  setNativeEnv('EGL_PLATFORM', 'surfaceless'); // Mesa: no X11/Wayland display here
  return require(dawnPath()) as DawnModule;
}

/** Asks Dawn for an adapter in a child process, synchronously (used only to decide a skip at collection time). */
function probeDawnAdapter(): string | undefined {
  const dawn = loadDawn();
  if (dawn.__tfjsPeftProbe !== undefined) return dawn.__tfjsPeftProbe ?? undefined;
  const { spawnSync } = require('node:child_process');
  const script = `const d = require(${JSON.stringify(dawnPath())});
    d.create(${JSON.stringify(DAWN_FLAGS)}).requestAdapter({ featureLevel: 'compatibility' })
      .then((a) => { console.log(a ? 'ok' : 'Dawn returned no adapter'); process.exit(0); },
            (e) => { console.log('requestAdapter failed: ' + e.message); process.exit(0); });`;
  const result = spawnSync(process.execPath, ['-e', script], {
    env: { ...process.env, EGL_PLATFORM: process.env.EGL_PLATFORM ?? 'surfaceless' },
    encoding: 'utf8',
    timeout: 60000,
  });
  const lastLine =
    String(result.stdout ?? '')
      .trim()
      .split('\n')
      .pop() ?? '';
  const reason = lastLine === 'ok' ? null : `${lastLine || 'adapter probe crashed'} ${webgpuHint()}`;
  dawn.__tfjsPeftProbe = reason;
  return reason ?? undefined;
}

function webgpuHint(): string {
  return '(Dawn on Mesa GLES needs EGL_PLATFORM=surfaceless and the Debian packages libegl1 libegl-dev libegl-mesa0 libgles2 libgbm1 libgl1-mesa-dri)';
}

function tfjsNodeBindingPath(): string | undefined {
  const fs = require('node:fs');
  const path = require('node:path');
  const lib = path.join(packageDir('@tensorflow/tfjs-node'), 'lib');
  if (!fs.existsSync(lib)) return undefined;
  for (const dir of fs.readdirSync(lib)) {
    const candidate = path.join(lib, dir, 'tfjs_binding.node');
    if (dir.startsWith('napi-v') && fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

function computeUnavailableReason(name: BackendName): string | undefined {
  try {
    switch (name) {
      case 'cpu':
        return undefined;
      case 'wasm': {
        const fs = require('node:fs');
        const path = require('node:path');
        const wasmFile = path.join(
          packageDir('@tensorflow/tfjs-backend-wasm'),
          'dist',
          'tfjs-backend-wasm-simd.wasm',
        );
        return fs.existsSync(wasmFile) ? undefined : `${wasmFile} is missing`;
      }
      case 'webgpu': {
        const fs = require('node:fs');
        if (!fs.existsSync(dawnPath()))
          return `no Dawn binary for ${process.platform}-${process.arch} (${dawnPath()})`;
        return probeDawnAdapter();
      }
      case 'tensorflow': {
        try {
          packageDir('@tensorflow/tfjs-node');
        } catch {
          return '@tensorflow/tfjs-node is not installed';
        }
        const binding = tfjsNodeBindingPath();
        if (binding === undefined) return TFJS_NODE_BUILD_HINT;
        require(binding); // native load: fails here if libtensorflow cannot be found
        return undefined;
      }
      case 'webgl':
        return 'webgl needs a browser; not available in Node';
    }
  } catch (error) {
    return errorMessage(error);
  }
}

/**
 * Synchronous check, used at test-collection time to turn an unavailable OPTIONAL backend into a
 * loud skip. Returns the reason, or undefined when the backend looks usable. Cached per test file.
 */
export function backendUnavailableReason(name: BackendName): string | undefined {
  if (!unavailableCache.has(name)) unavailableCache.set(name, computeUnavailableReason(name));
  return unavailableCache.get(name);
}

async function prepareWasm(): Promise<void> {
  if (tf.findBackendFactory('wasm') !== null) return; // already registered and configured in this test file
  const path = require('node:path');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  // Threads need Workers + SharedArrayBuffer in Node: not supported by tfjs in Node; SIMD is.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  wasm.setWasmPaths(path.join(packageDir('@tensorflow/tfjs-backend-wasm'), 'dist') + path.sep);
}

async function prepareWebgpu(): Promise<void> {
  if (tf.findBackendFactory('webgpu') !== null) return;
  const dawn = loadDawn();
  if (dawn.__tfjsPeftGpu === undefined) {
    const gpu = dawn.create(DAWN_FLAGS);
    const request = gpu.requestAdapter.bind(gpu);
    // Mesa's GLES exposes WebGPU's compatibility feature level only.
    gpu.requestAdapter = (options = {}) => request({ ...options, featureLevel: 'compatibility' });
    dawn.__tfjsPeftGpu = gpu;
  }
  const g = globalThis as any;
  Object.assign(g, dawn.globals); // GPUBufferUsage, GPUMapMode, GPUShaderStage, ...
  if (g.navigator === undefined) g.navigator = {};
  Object.defineProperty(g.navigator, 'gpu', { value: dawn.__tfjsPeftGpu, configurable: true });
  const adapter = await dawn.__tfjsPeftGpu.requestAdapter();
  if (adapter === null) throw new Error(`Dawn returned no WebGPU adapter ${webgpuHint()}`);
  // tfjs-backend-webgpu registers itself only if navigator.gpu exists when it is first imported.
  require('@tensorflow/tfjs-backend-webgpu');
  if (tf.findBackendFactory('webgpu') === null) {
    throw new Error(
      '@tensorflow/tfjs-backend-webgpu was imported before navigator.gpu was installed, so it did not register; ' +
        'do not import it in tests: describeEachBackend/prepareBackend loads it',
    );
  }
}

async function prepareTensorflow(): Promise<void> {
  if (tf.findBackendFactory('tensorflow') !== null) return;
  const reason = backendUnavailableReason('tensorflow');
  if (reason !== undefined) throw new Error(reason);
  setNativeEnv('TF_CPP_MIN_LOG_LEVEL', '2'); // silence TensorFlow's C++ info logs
  const previous = tf.engine().backendName;
  // Loading tfjs-node registers 'tensorflow' (priority 3) AND calls tf.setBackend('tensorflow').
  const tfnode = require('@tensorflow/tfjs-node');
  if (tfnode.engine() !== tf.engine()) {
    throw new Error(
      '@tensorflow/tfjs-node loaded a second @tensorflow/tfjs-core instance (check pnpm layout)',
    );
  }
  // Undo its side effect so it never becomes the silent default of other tests.
  if (previous !== undefined && previous !== 'tensorflow') await tf.setBackend(previous);
}

/**
 * Makes `name` registered and initialisable in this (Node) process: loads and configures what it
 * needs. Does not switch to it. Throws with a readable reason when the backend cannot be provided.
 */
export async function prepareBackend(name: BackendName): Promise<void> {
  switch (name) {
    case 'cpu':
      require('@tensorflow/tfjs-backend-cpu');
      return;
    case 'wasm':
      return prepareWasm();
    case 'webgpu':
      return prepareWebgpu();
    case 'tensorflow':
      return prepareTensorflow();
    case 'webgl':
      throw new Error('webgl needs a browser (the browser test runner provides it); not available in Node');
  }
}
