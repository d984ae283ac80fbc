#!/usr/bin/env node
/* global document, window -- used inside page.evaluate callbacks, which run in the page */
// End-to-end test of the browser demo: builds it (vite build), serves dist/ on 127.0.0.1 (a secure
// context, with COOP/COEP so wasm gets threads), and drives it in headless Debian Chromium through
// playwright-core with a fresh user-data dir kept across page reloads. Per backend: fine-tune
// with LoRA, check the training loss fell and the test accuracy is shown, save the adapter to
// IndexedDB, reload the page, load the adapter and check the predictions equal those made right
// after training. Writes docs/images/browser-demo-<backend>-{trained,reloaded}.png.
//
//   node tools/browser-demo/e2e.mjs [--backends=wasm,webgl] [--method=lora] [--epochs=3] [--no-build] [--screenshots=DIR]
//
// Screenshots go to docs/images/ (the committed ones) unless --screenshots=DIR says otherwise
// (`pnpm test` passes a temporary folder, so a test run leaves the working tree as it was).
//
// Exit status 1 on any failure. Without Chromium it is skipped (exit 0) unless
// TFJS_PEFT_STRICT_BACKENDS=1 (CI), where that is a failure too.
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { CHROMIUM_FLAGS } from '../browser-tests/chromium-flags.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const distDir = path.join(here, 'dist');
const defaultImagesDir = path.join(repoRoot, 'docs', 'images');
const requireFromRoot = createRequire(path.join(repoRoot, 'package.json'));

const BACKENDS = ['wasm', 'webgl', 'webgpu', 'cpu'];

function parseOptions(argv) {
  const options = {
    backends: ['wasm'],
    method: 'lora',
    epochs: 1,
    build: true,
    trainTimeoutS: 420,
    chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    imagesDir: defaultImagesDir,
  };
  for (const arg of argv) {
    const [flag, ...rest] = arg.split('=');
    const value = rest.join('=');
    if (flag === '--backends') options.backends = value.split(',').map((s) => s.trim()).filter(Boolean);
    else if (flag === '--method') options.method = value;
    else if (flag === '--epochs') options.epochs = Number(value);
    else if (flag === '--no-build') options.build = false;
    else if (flag === '--train-timeout') options.trainTimeoutS = Number(value);
    else if (flag === '--chromium') options.chromium = value;
    else if (flag === '--screenshots') options.imagesDir = path.resolve(process.env.INIT_CWD ?? process.cwd(), value);
    else {
      console.error(`Unknown option ${arg}. Options: --backends=${BACKENDS.join(',')} --method=lora --epochs=3 --no-build --train-timeout=S --chromium=PATH --screenshots=DIR`);
      process.exit(2);
    }
  }
  const unknown = options.backends.filter((b) => !BACKENDS.includes(b));
  if (unknown.length || !options.backends.length || !(options.epochs >= 1)) {
    console.error(`Bad --backends or --epochs: ${options.backends.join(',')} / ${options.epochs}`);
    process.exit(2);
  }
  return options;
}

const CONTENT_TYPES = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

function serve(root) {
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    const relative = decodeURIComponent(url.pathname === '/' ? '/index.html' : url.pathname);
    const file = path.join(root, relative);
    const headers = {
      'cache-control': 'no-store',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    };
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      response.writeHead(404, headers);
      response.end('not found');
      return;
    }
    response.writeHead(200, { ...headers, 'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const log = (line) => console.log(`[browser-demo e2e] ${line}`);

class CheckError extends Error {}
function check(condition, message) {
  if (!condition) throw new CheckError(message);
}

/** Uncaught errors of the page (and its workers): any one fails the backend at once. */
const pageErrors = [];

/** Waits until body[data-phase] is one of `phases`; returns window.__demo. */
async function waitForPhase(page, phases, timeoutS) {
  const deadline = performance.now() + timeoutS * 1000;
  for (;;) {
    if (pageErrors.length > 0) throw new CheckError(`uncaught error in the page: ${pageErrors.splice(0).join('; ')}`);
    const phase = await page.evaluate(() => document.body.dataset.phase);
    if (phase === 'error') throw new CheckError(`the page reports an error: ${await page.evaluate(() => window.__demo.error)}`);
    if (phases.includes(phase)) return page.evaluate(() => window.__demo);
    if (performance.now() > deadline) throw new CheckError(`still '${phase}' after ${timeoutS} s (waiting for ${phases.join('/')})`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** `wasm` for LoRA (the default), `wasm-dora` etc. for the other methods. */
const shotName = (backend, options) => (options.method === 'lora' ? backend : `${backend}-${options.method}`);

async function runBackend(context, origin, backend, options) {
  const result = { backend, ok: false, timings: {} };
  const page = context.pages()[0] ?? (await context.newPage());
  const started = performance.now();
  const url = `${origin}/?method=${options.method}&backend=${backend}&epochs=${options.epochs}`;
  await page.goto(url);
  await waitForPhase(page, ['ready'], 120);
  await page.click('#train');
  let state = await waitForPhase(page, ['trained'], options.trainTimeoutS);
  result.timings.train = state.timings.trainMs;
  log(
    `[${backend}] page timings: ` +
      Object.entries(state.timings)
        .map(([k, v]) => `${k.replace(/Ms$/, '')} ${seconds(v)}`)
        .join(', '),
  );
  Object.assign(result, {
    actualBackend: state.backend,
    wasmThreads: state.wasmThreads,
    steps: state.losses.length,
    lossBefore: state.trainLossBefore,
    lossAfter: state.trainLossAfter,
    firstStepLoss: state.losses[0],
    lastStepLoss: state.losses.at(-1),
    accuracyBefore: state.testAccuracyBefore,
    accuracy: state.testAccuracy,
    trainableParams: state.trainableParams,
  });
  log(
    `[${backend}] trained ${state.losses.length} steps in ${seconds(state.timings.trainMs)} on ${state.backend}` +
      `${state.wasmThreads === undefined ? '' : state.wasmThreads ? ' (threads)' : ' (single thread)'}: ` +
      `train loss ${state.trainLossBefore.toFixed(4)} → ${state.trainLossAfter.toFixed(4)}, ` +
      `test accuracy ${(100 * state.testAccuracyBefore).toFixed(1)}% → ${(100 * state.testAccuracy).toFixed(1)}%`,
  );
  check(state.backend === backend, `asked for ${backend}, the page ran on ${state.backend}`);
  check(state.losses.length === options.epochs * 6 && state.losses.every(Number.isFinite), `step losses: ${state.losses}`);
  check(state.trainLossAfter < state.trainLossBefore, `the training loss did not fall: ${state.trainLossBefore} → ${state.trainLossAfter}`);
  check(typeof state.testAccuracy === 'number' && state.testAccuracy > 0, `no test accuracy: ${state.testAccuracy}`);
  check((await page.textContent('#accuracy')).includes('Test accuracy'), 'the accuracy is not shown');
  await page.screenshot({ path: path.join(options.imagesDir, `browser-demo-${shotName(backend, options)}-trained.png`), fullPage: true });

  await page.click('#save');
  state = await waitForPhase(page, ['saved'], 60);
  const trainedProbs = state.probs;
  log(`[${backend}] saved ${state.adapterUrl} (${(state.adapterBytes / 1024).toFixed(1)} KiB) in ${seconds(state.timings.saveMs)}`);
  check(state.adapterUrl === `indexeddb://spam-${options.method}`, `adapter URL ${state.adapterUrl}`);

  await page.reload();
  state = await waitForPhase(page, ['ready'], 120);
  check(state.probs === undefined, 'the reloaded page still holds predictions');
  check(await page.isEnabled('#load'), 'after the reload, "Load saved adapter" is not enabled');
  await page.click('#load');
  state = await waitForPhase(page, ['loaded'], options.trainTimeoutS);
  const { comparison } = state;
  result.reload = comparison;
  log(
    `[${backend}] after the reload: PeftModel.fromPretrained(base, '${state.adapterUrl ?? `indexeddb://spam-${options.method}`}') in ${seconds(state.timings.loadMs)}: ` +
      `test accuracy ${(100 * state.testAccuracy).toFixed(1)}%, same labels ${comparison.sameLabels}, max |Δp| ${comparison.maxAbsDiff.toExponential(2)}${comparison.identical ? ' (bit-identical)' : ''}`,
  );
  check(state.backend === backend, `after the reload the page ran on ${state.backend}`);
  check(state.probs.length === trainedProbs.length, 'prediction count differs');
  const maxDiff = Math.max(...state.probs.map((p, i) => Math.abs(p - trainedProbs[i])));
  check(comparison.sameLabels && maxDiff < 1e-5, `reloaded predictions differ: max |Δp| ${maxDiff}`);
  check(state.testAccuracy === result.accuracy, `accuracy ${result.accuracy} → ${state.testAccuracy} after the reload`);
  await page.screenshot({ path: path.join(options.imagesDir, `browser-demo-${shotName(backend, options)}-reloaded.png`), fullPage: true });
  result.ok = true;
  result.timings.total = performance.now() - started;
  return result;
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const wallStarted = performance.now();
  if (!fs.existsSync(options.chromium)) {
    const message = `Chromium not found at ${options.chromium}: apt-get install -y chromium, or pass --chromium=PATH.`;
    if (process.env.TFJS_PEFT_STRICT_BACKENDS === '1') {
      console.error(message);
      return 1;
    }
    console.warn(`SKIPPED the browser demo e2e test: ${message}`);
    return 0;
  }
  if (options.build) {
    const t = performance.now();
    const { build } = await import('vite');
    // 'error': the build's warnings (Node built-ins externalised for the browser) are expected; `pnpm build:app` shows them.
    await build({ root: here, configFile: path.join(here, 'vite.config.ts'), logLevel: 'error' });
    log(`vite build in ${seconds(performance.now() - t)}`);
  }
  check(fs.existsSync(path.join(distDir, 'index.html')), `${distDir}/index.html is missing (build first or drop --no-build)`);
  fs.mkdirSync(options.imagesDir, { recursive: true });

  const server = await serve(distDir);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-peft-browser-demo-'));
  const { chromium } = requireFromRoot('playwright-core');
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: options.chromium,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1100, height: 900 },
  });
  log(`Chromium ${context.browser()?.version() ?? ''} at ${origin}, user data ${userDataDir}; backends ${options.backends.join(', ')}`);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (error) => {
    console.log(`  page error: ${error.message}`);
    pageErrors.push(error.message);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) console.log(`  HTTP ${response.status()} ${response.url()}`);
  });
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') console.log(`  console.${message.type()}: ${message.text()}`);
  });

  const results = [];
  for (const backend of options.backends) {
    pageErrors.length = 0;
    try {
      results.push(await runBackend(context, origin, backend, options));
    } catch (error) {
      console.log(`  [${backend}] FAILED: ${error.message}`);
      await page.screenshot({ path: path.join(os.tmpdir(), `browser-demo-${backend}-failure.png`), fullPage: true }).catch(() => {});
      results.push({ backend, ok: false, error: error.message });
    }
  }
  await context.close();
  server.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });

  console.log('\nbackend  result  steps  train loss        test acc        reload max|Δp|  train time');
  for (const r of results) {
    console.log(
      [
        r.backend.padEnd(7),
        (r.ok ? 'ok' : 'FAIL').padEnd(6),
        String(r.steps ?? '-').padEnd(5),
        (r.lossBefore === undefined ? '-' : `${r.lossBefore.toFixed(3)} → ${r.lossAfter.toFixed(3)}`).padEnd(16),
        (r.accuracy === undefined ? '-' : `${(100 * r.accuracyBefore).toFixed(1)}% → ${(100 * r.accuracy).toFixed(1)}%`).padEnd(15),
        (r.reload ? r.reload.maxAbsDiff.toExponential(1) : '-').padEnd(15),
        r.timings?.train === undefined ? '-' : seconds(r.timings.train),
      ].join('  '),
    );
    if (r.error) console.log(`         ${r.error}`);
  }
  const ok = results.every((r) => r.ok);
  log(`${ok ? 'passed' : 'FAILED'} in ${seconds(performance.now() - wallStarted)}`);
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
