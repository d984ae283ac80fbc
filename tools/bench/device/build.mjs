// Bundles the bench worker (worker-entry.ts) into one ES module with every JS dependency inlined,
// so it runs with a bare `node` on a machine without the workspace: the GPU machine, where only the
// bundle, a node binary and Dawn's dawn.node travel (see README.md). Native parts stay outside:
// dawn.node is loaded from TFJS_PEFT_DAWN_NODE; tfjs-node and the wasm backend are not bundled.
// Usage: node tools/bench/device/build.mjs [outfile]   (default: .device/bench-worker.mjs)
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');
const outfile = path.resolve(
  process.cwd(),
  process.argv[2] ?? path.join(repoRoot, '.device', 'bench-worker.mjs'),
);

// The backend packages are dependencies of @tfjs-peft/test-utils; resolve them where it does, so
// the bundle holds the same files (and one tfjs-core) as a workspace run.
const fromTestUtils = createRequire(
  path.join(here, '..', 'node_modules', '@tfjs-peft', 'test-utils', 'package.json'),
);
const entryOf = (name) => fromTestUtils.resolve(name);

await build({
  entryPoints: [path.join(here, 'worker-entry.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  conditions: ['@tfjs-peft/source'],
  alias: {
    '@tensorflow/tfjs-backend-webgpu': entryOf('@tensorflow/tfjs-backend-webgpu'),
    '@tensorflow/tfjs-backend-cpu': entryOf('@tensorflow/tfjs-backend-cpu'),
  },
  // CommonJS dependencies call require(); an ES module bundle has none unless we make one.
  banner: {
    js: "import { createRequire as __benchCreateRequire } from 'node:module'; const require = __benchCreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
console.log(`[bench] wrote ${path.relative(process.cwd(), outfile)}`);
