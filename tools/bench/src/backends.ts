// Registers ONE backend in this (worker) process and switches to it. The backend packages are
// dependencies of @tfjs-peft/test-utils, so they are resolved from there (as tools/demo does);
// test-utils' own prepareBackend() is written for jest's CommonJS `require`.
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { WasmBackendModule } from '@tfjs-peft/core';

/** The wasm backend's XNNPACK thread count once useBackend('wasm') ran, else null. */
export let wasmThreadsInUse: number | null = null;

export const ALL_BACKENDS = ['tensorflow', 'wasm', 'webgpu', 'cpu'] as const;
export type BenchBackend = (typeof ALL_BACKENDS)[number];

let requireFromWorkspace: NodeJS.Require | undefined;

/** require() as @tfjs-peft/test-utils sees it: taken on first use, so a bundled worker never needs the workspace. */
function requireFromTestUtils(id: string): unknown {
  requireFromWorkspace ??= createRequire(import.meta.resolve('@tfjs-peft/test-utils'));
  return requireFromWorkspace(id);
}

function packageDir(name: string): string {
  requireFromWorkspace ??= createRequire(import.meta.resolve('@tfjs-peft/test-utils'));
  return path.dirname(requireFromWorkspace.resolve(`${name}/package.json`));
}

/**
 * Backend packages compiled into a self-contained worker bundle (../device/build.mjs), by name. A
 * bundle has no node_modules to require from, so its entry registers loaders here; each loader must
 * run the package's top-level code only when called (the webgpu backend registers itself only if
 * navigator.gpu exists at that moment).
 */
const bundledBackendPackages = new Map<string, () => Promise<unknown>>();

export function registerBundledBackendPackage(name: string, load: () => Promise<unknown>): void {
  bundledBackendPackages.set(name, load);
}

async function loadBackendPackage(name: string): Promise<void> {
  const bundled = bundledBackendPackages.get(name);
  if (bundled !== undefined) await bundled();
  else requireFromTestUtils(name);
}

export function firstLine(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] : String(error);
}

function tfjsNodeBinding(): string {
  const lib = path.join(packageDir('@tensorflow/tfjs-node'), 'lib');
  const napi = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith('napi-v')) : undefined;
  const binding = napi && path.join(lib, napi, 'tfjs_binding.node');
  if (!binding || !existsSync(binding)) {
    throw new Error('tfjs-node binding not built (pnpm --filter @tfjs-peft/test-utils build:tfjs-node)');
  }
  return binding;
}

interface Gpu {
  requestAdapter(options?: Record<string, unknown>): Promise<unknown | null>;
}

async function registerWebgpu(): Promise<string> {
  // Dawn (npm `webgpu`) on Mesa's software OpenGL ES: no display, compatibility feature level.
  process.env.EGL_PLATFORM ??= 'surfaceless';
  // TFJS_PEFT_DAWN_NODE: a dawn.node carried beside a bundled worker (the GPU machine has no node_modules).
  const dawnFile =
    process.env.TFJS_PEFT_DAWN_NODE ??
    path.join(packageDir('webgpu'), 'dist', `${process.platform}-${process.arch}`, 'dawn.node');
  const dawn = createRequire(import.meta.url)(dawnFile) as {
    create(flags: string[]): Gpu;
    globals: Record<string, unknown>;
  };
  const flags = (process.env.TFJS_PEFT_DAWN_FLAGS ?? 'backend=opengles').split(',');
  const gpu = dawn.create(flags);
  if (flags.includes('backend=opengles')) {
    const request = gpu.requestAdapter.bind(gpu);
    gpu.requestAdapter = (options = {}) => request({ ...options, featureLevel: 'compatibility' });
  }
  const g = globalThis as unknown as { navigator?: Record<string, unknown> };
  Object.assign(globalThis, dawn.globals);
  if (g.navigator === undefined) g.navigator = {};
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  const adapter = (await gpu.requestAdapter()) as { info?: { description?: string; vendor?: string } } | null;
  if (adapter === null) throw new Error('Dawn returned no WebGPU adapter');
  await loadBackendPackage('@tensorflow/tfjs-backend-webgpu'); // registers only if navigator.gpu exists now
  return `Dawn ${flags.join(' ')}: ${adapter.info?.description || adapter.info?.vendor || 'adapter'}`;
}

/** Registers `name`, makes it the active backend, and returns a description of it. */
export async function useBackend(name: BenchBackend, wasmThreads?: number): Promise<string> {
  let description: string = name;
  switch (name) {
    case 'cpu':
      await loadBackendPackage('@tensorflow/tfjs-backend-cpu');
      break;
    case 'wasm': {
      const wasm = requireFromTestUtils('@tensorflow/tfjs-backend-wasm') as WasmBackendModule & {
        setWasmPaths(prefix: string): void;
      };
      wasm.setWasmPaths(path.join(packageDir('@tensorflow/tfjs-backend-wasm'), 'dist') + path.sep);
      // The threaded build through @tfjs-peft/core's Node loader (selectBackend's wasm option).
      const { selectBackend, wasmThreadCount } = await import('@tfjs-peft/core');
      await selectBackend('wasm', () => undefined, { wasm, wasmThreads: wasmThreads ?? wasmThreadCount() });
      const threads = wasm.getThreadsCount() as number;
      wasmThreadsInUse = threads;
      return threads === 1
        ? 'wasm (SIMD, 1 thread)'
        : `wasm (SIMD, ${threads} threads: threaded build, Node loader)`;
    }
    case 'tensorflow': {
      requireFromTestUtils(tfjsNodeBinding()); // the native load fails here if libtensorflow is missing
      process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
      const tfnode = requireFromTestUtils('@tensorflow/tfjs-node') as {
        engine(): unknown;
        version?: Record<string, string>;
      };
      if (tfnode.engine() !== tf.engine())
        throw new Error('tfjs-node loaded a second copy of @tensorflow/tfjs-core');
      description = `tensorflow (tfjs-node ${tfnode.version?.['tfjs-node'] ?? ''}, libtensorflow from the local wheel)`;
      break;
    }
    case 'webgpu':
      description = `webgpu (${await registerWebgpu()})`;
      break;
  }
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
  return description;
}
