#!/usr/bin/env node
// Runs the jest test files (packages/*/src/**/*.test.ts, not *.node.test.ts) in headless
// Chromium, once per tfjs backend. See README.md next to this file.
import { createRequire, SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { setTimeout, clearTimeout } from 'node:timers';
import { CHROMIUM_FLAGS } from './chromium-flags.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const testUtilsDir = path.join(repoRoot, 'packages/test-utils');
const requireFromRoot = createRequire(path.join(repoRoot, 'package.json'));
const requireFromTestUtils = createRequire(path.join(testUtilsDir, 'package.json'));

const ALL_BACKENDS = ['webgl', 'webgpu', 'wasm', 'cpu'];
const NODE_BUILTINS = new Set(requireFromRoot('node:module').builtinModules);
// Node-only packages that tests or jest's `expect` reach; graceful-fs patches `fs` when loaded.
const NODE_ONLY_PACKAGES = /^(@tensorflow\/tfjs-node(-gpu)?|webgpu|graceful-fs)(\/.*)?$/;

// ---- options ---------------------------------------------------------------------------------

const usage = `Usage: node tools/browser-tests/run.mjs [options]
  --backends=webgl,webgpu,wasm,cpu  backends to run (default: all four)
  --filter=TEXT                     only test files whose path contains TEXT (repeatable)
  --file-timeout=SECONDS            time box for one test file on one backend (default 600)
  --test-timeout=MS                 default per-test timeout (default: testTimeout of jest.preset.cjs)
  --no-wasm-threads                 serve without COOP/COEP, so wasm runs single-threaded
  --silent                          do not forward the page's console output
  --list                            print the test files that would run and exit
  --chromium=PATH                   Chromium binary (default: $CHROMIUM_PATH or /usr/bin/chromium)
  --chromium-arg=FLAG               extra Chromium flag (repeatable)`;

function parseOptions(argv) {
  const options = {
    backends: ALL_BACKENDS,
    filters: [],
    fileTimeoutMs: 600_000,
    testTimeoutMs: undefined,
    wasmThreads: true,
    silent: false,
    list: false,
    chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    chromiumArgs: [],
  };
  for (const arg of argv) {
    const [flag, ...rest] = arg.split('=');
    const value = rest.join('=');
    if (flag === '--backends')
      options.backends = value
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean);
    else if (flag === '--filter') options.filters.push(value);
    else if (flag === '--file-timeout') options.fileTimeoutMs = Number(value) * 1000;
    else if (flag === '--test-timeout') options.testTimeoutMs = Number(value);
    else if (flag === '--no-wasm-threads') options.wasmThreads = false;
    else if (flag === '--silent') options.silent = true;
    else if (flag === '--list') options.list = true;
    else if (flag === '--chromium') options.chromium = value;
    else if (flag === '--chromium-arg') options.chromiumArgs.push(value);
    else if (flag === '--help' || flag === '-h') {
      console.log(usage);
      process.exit(0);
    } else {
      console.error(`Unknown option ${arg}\n${usage}`);
      process.exit(2);
    }
  }
  const unknown = options.backends.filter((name) => !ALL_BACKENDS.includes(name));
  if (unknown.length > 0 || options.backends.length === 0) {
    console.error(
      `--backends takes a list from ${ALL_BACKENDS.join(', ')}; got '${options.backends.join(',')}'`,
    );
    process.exit(2);
  }
  if (!(options.fileTimeoutMs > 0)) {
    console.error('--file-timeout takes a positive number of seconds');
    process.exit(2);
  }
  return options;
}

// ---- test files --------------------------------------------------------------------------------

function findTestFiles(filters) {
  const files = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules') walk(full);
      } else if (entry.name.endsWith('.test.ts') && !entry.name.endsWith('.node.test.ts')) {
        files.push(path.relative(repoRoot, full));
      }
    }
  };
  const packagesDir = path.join(repoRoot, 'packages');
  for (const name of fs.readdirSync(packagesDir).sort()) {
    const src = path.join(packagesDir, name, 'src');
    if (fs.existsSync(src)) walk(src);
  }
  return files
    .map((file) => file.split(path.sep).join('/'))
    .filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)))
    .sort();
}

function jestPreset() {
  const preset = requireFromRoot('./jest.preset.cjs');
  return { setupFiles: preset.setupFilesAfterEnv ?? [], testTimeout: preset.testTimeout ?? 5000 };
}

// ---- bundling -----------------------------------------------------------------------------------

const toOutName = (file) =>
  path
    .relative(repoRoot, file)
    .split(path.sep)
    .join('/')
    .replace(/\.[cm]?[jt]s$/, '');

/** esbuild plugin: browser stand-ins for Node-only code. */
function browserPlugin() {
  const prepareBackendNode = path.join(testUtilsDir, 'src/prepare-backend');
  const prepareBackendBrowser = path.join(testUtilsDir, 'src/prepare-backend.browser.ts');
  return {
    name: 'tfjs-peft-browser',
    setup(build) {
      // The harness's Node backend set-up (tfjs-node, Dawn) becomes its browser twin.
      build.onResolve({ filter: /(^|\/)prepare-backend(\.[jt]s)?$/ }, (args) => {
        if (!args.path.startsWith('.')) return undefined;
        const target = path.resolve(args.resolveDir, args.path).replace(/\.[jt]s$/, '');
        return target === prepareBackendNode ? { path: prepareBackendBrowser } : undefined;
      });
      // `path` gets a small POSIX implementation; other Node built-ins and Node-only packages
      // become empty modules.
      build.onResolve({ filter: /^(node:)?path(\/posix)?$/ }, () => ({
        path: path.join(here, 'shims/path.ts'),
      }));
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        const bare = args.path.replace(/^node:/, '').split('/')[0];
        if (args.path.startsWith('node:') || NODE_BUILTINS.has(bare) || NODE_ONLY_PACKAGES.test(args.path)) {
          return { path: args.path, namespace: 'node-only' };
        }
        return undefined;
      });
      build.onLoad({ filter: /.*/, namespace: 'node-only' }, () => ({
        contents: 'module.exports = {};',
        loader: 'js',
      }));
      // The runtime (tools/browser-tests) resolves packages as packages/test-utils does.
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData?.fromRuntime || !args.importer.startsWith(here + path.sep)) return undefined;
        if (args.path === 'expect' || args.path === 'jest-mock') {
          const expectDir = path.dirname(requireFromTestUtils.resolve('expect/package.json'));
          const resolveDir = args.path === 'expect' ? testUtilsDir : expectDir;
          return build.resolve(args.path, { kind: args.kind, resolveDir, pluginData: { fromRuntime: true } });
        }
        return build.resolve(args.path, {
          kind: args.kind,
          resolveDir: testUtilsDir,
          pluginData: { fromRuntime: true },
        });
      });
    },
  };
}

async function bundle(testFiles, setupFiles, outdir) {
  const esbuild = requireFromRoot('esbuild');
  const entryPoints = [
    path.join(here, 'runtime.ts'),
    ...setupFiles,
    ...testFiles.map((file) => path.join(repoRoot, file)),
  ];
  const result = await esbuild.build({
    entryPoints: entryPoints.map((file) => ({ in: file, out: toOutName(file) })),
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'linked',
    conditions: ['@tfjs-peft/source'],
    define: {
      'process.env.NODE_ENV': '"test"',
      global: 'globalThis',
      __dirname: '"/"',
      __filename: '"/index.js"',
    },
    inject: [path.join(here, 'shims/process.ts')],
    plugins: [browserPlugin()],
    logLevel: 'silent',
  });
  for (const warning of result.warnings.filter((w) => !/dynamic import/i.test(w.text))) {
    const where = warning.location ? ` (${warning.location.file}:${warning.location.line})` : '';
    console.warn(yellow(`esbuild warning: ${warning.text}${where}`));
    if (/marked as having no side effects/.test(warning.text)) {
      // A registration import dropped here is dropped by users' bundlers too.
      console.warn(
        yellow('  -> list that file in "sideEffects" of its package.json, or its registration never runs'),
      );
    }
  }
}

// ---- server -------------------------------------------------------------------------------------

const CONTENT_TYPES = {
  '.js': 'text/javascript',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.html': 'text/html',
};

function serve(outdir, wasmThreads) {
  const wasmDir = path.join(
    path.dirname(requireFromTestUtils.resolve('@tensorflow/tfjs-backend-wasm/package.json')),
    'dist',
  );
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    let file;
    if (url.pathname === '/' || url.pathname === '/index.html') file = null;
    else if (url.pathname.startsWith('/out/'))
      file = path.join(outdir, decodeURIComponent(url.pathname.slice(5)));
    else if (url.pathname.startsWith('/wasm/')) file = path.join(wasmDir, path.basename(url.pathname));
    else file = undefined;
    const headers = { 'cache-control': 'no-store' };
    if (wasmThreads) {
      // Cross-origin isolation gives SharedArrayBuffer, so tfjs-backend-wasm can use threads.
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
    }
    if (file === null) {
      response.writeHead(200, { ...headers, 'content-type': 'text/html' });
      response.end('<!doctype html><meta charset="utf-8"><title>tfjs-peft browser tests</title>');
      return;
    }
    if (
      file === undefined ||
      !(file.startsWith(outdir + path.sep) || file.startsWith(wasmDir + path.sep)) ||
      !fs.existsSync(file)
    ) {
      response.writeHead(404, headers);
      response.end('not found');
      return;
    }
    response.writeHead(200, {
      ...headers,
      'content-type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
    });
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---- stack traces -----------------------------------------------------------------------------

function makeStackMapper(outdir, origin) {
  const maps = new Map();
  const mapFor = (file) => {
    if (!maps.has(file)) {
      let map = null;
      try {
        map = new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8')));
      } catch {
        map = null;
      }
      maps.set(file, map);
    }
    return maps.get(file);
  };
  const framePattern = new RegExp(
    `${origin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/out/([^\\s)]+?):(\\d+):(\\d+)`,
    'g',
  );
  // Frames of the runner itself, of jest's expect, and of Playwright's page.evaluate wrapper.
  const playwright = /\(eval at evaluate|^\s+at (async )?<anonymous>:\d+|^\s+at new Promise \(<anonymous>\)$/;
  const hidden = /(tools\/browser-tests\/|node_modules\/(\.pnpm\/)?(expect|jest-[\w-]+|@jest\/[\w-]+)[@/])/;
  return (stack) =>
    stack
      .split('\n')
      .map((line) =>
        line.replace(framePattern, (match, outFile, lineNumber, column) => {
          const bundled = path.join(outdir, outFile);
          const entry = mapFor(bundled)?.findEntry(Number(lineNumber) - 1, Number(column) - 1);
          if (!entry?.originalSource) return match;
          const source = path.relative(
            repoRoot,
            path.resolve(path.dirname(bundled), entry.originalSource.replace(/^file:\/\//, '')),
          );
          return `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
        }),
      )
      .filter(
        (line, index) =>
          index === 0 || !/^\s+at /.test(line) || !(hidden.test(line) || playwright.test(line)),
      )
      .join('\n');
}

// ---- output -----------------------------------------------------------------------------------

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code) => (text) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const green = paint(32);
const red = paint(31);
const yellow = paint(33);
const dim = paint(2);
const bold = paint(1);
const indent = (text, spaces) =>
  text
    .split('\n')
    .map((line) => ' '.repeat(spaces) + line)
    .join('\n');
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

function formatError(error, mapStack) {
  const stack = error.stack ? mapStack(error.stack) : '';
  // Chrome's stack starts with "Name: message"; print the message once, then the frames.
  const frames = stack.split('\n').filter((line) => /^\s+at /.test(line));
  return [error.message, ...frames.map((frame) => dim(frame.trim()))].join('\n');
}

// ---- main -------------------------------------------------------------------------------------

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const preset = jestPreset();
  const testTimeout = options.testTimeoutMs ?? preset.testTimeout;
  const testFiles = findTestFiles(options.filters);
  if (options.list) {
    for (const file of testFiles) console.log(file);
    return 0;
  }
  if (testFiles.length === 0) {
    console.error(
      red(
        `No browser test files found${options.filters.length ? ` matching ${options.filters.join(', ')}` : ''}.`,
      ),
    );
    return 1;
  }
  if (!fs.existsSync(options.chromium)) {
    const message = `Chromium not found at ${options.chromium}: apt-get install -y chromium, or pass --chromium=PATH.`;
    // CI (TFJS_PEFT_STRICT_BACKENDS=1) installs Chromium, so there a missing browser is a failure.
    if (process.env.TFJS_PEFT_STRICT_BACKENDS === '1') {
      console.error(red(message));
      return 1;
    }
    console.warn(red(`SKIPPED all browser tests (webgl, webgpu, wasm, cpu in Chromium): ${message}`));
    return 0;
  }

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-peft-browser-tests-'));
  const outdir = path.join(workDir, 'out');
  const cleanup = () => fs.rmSync(workDir, { recursive: true, force: true });
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

  const bundleStarted = performance.now();
  try {
    await bundle(testFiles, preset.setupFiles, outdir);
  } catch (error) {
    console.error(red('Bundling the tests for the browser failed:'));
    for (const message of error.errors ?? []) {
      console.error(
        `  ${message.text}${message.location ? ` (${message.location.file}:${message.location.line}:${message.location.column})` : ''}`,
      );
    }
    if (!error.errors) console.error(error);
    return 1;
  }
  console.log(
    dim(`Bundled ${testFiles.length} test file(s) in ${Math.round(performance.now() - bundleStarted)} ms`),
  );

  const server = await serve(outdir, options.wasmThreads);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const mapStack = makeStackMapper(outdir, origin);
  const { chromium } = requireFromRoot('playwright-core');
  const browser = await chromium.launch({
    executablePath: options.chromium,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...options.chromiumArgs],
  });
  console.log(dim(`Chromium ${browser.version()} at ${origin}; backends: ${options.backends.join(', ')}`));

  const toUrl = (file) => `${origin}/out/${toOutName(file)}.js`;
  const runtimeUrl = toUrl(path.join(here, 'runtime.ts'));
  const setupUrls = preset.setupFiles.map(toUrl);
  const summary = [];
  const failures = [];

  for (const backend of options.backends) {
    const row = {
      backend,
      files: 0,
      passed: 0,
      failed: 0,
      skipped: 0,
      todo: 0,
      fileErrors: 0,
      ms: 0,
      status: 'ok',
      info: '',
    };
    summary.push(row);
    const backendStarted = performance.now();
    const context = await browser.newContext();
    let current = { file: '', names: [] };
    await context.exposeBinding('__tfjsPeftReport', (_source, event) => handle(event));

    function handle(event) {
      if (event.type === 'test') {
        // Counted as they arrive, so a file cut off by its time box still counts what ran.
        row[event.status]++;
        const name = event.titlePath.join(' › ');
        const time = event.duration >= 1 ? dim(` (${Math.round(event.duration)} ms)`) : '';
        if (event.status === 'passed') console.log(`    ${green('✓')} ${name}${time}`);
        else if (event.status === 'skipped')
          console.log(`    ${yellow('○')} ${dim(name)} ${dim('(skipped)')}`);
        else if (event.status === 'todo') console.log(`    ${yellow('✎')} ${dim(name)} ${dim('(todo)')}`);
        else {
          console.log(`    ${red('✗')} ${name}${time}`);
          const text = event.errors.map((error) => formatError(error, mapStack)).join('\n\n');
          console.log(indent(text, 8));
          failures.push({ backend, file: current.file, name, text });
        }
      } else if (event.type === 'file-done') {
        current.done = event;
      }
    }

    // Initialise the backend once on its own: a backend that cannot start fails the run.
    const probePage = await context.newPage();
    try {
      await probePage.goto(`${origin}/`);
      const info = await probePage.evaluate(
        async ({ runtimeUrl, backend, wasmPath }) => {
          globalThis.__TFJS_PEFT_BACKENDS__ = [backend];
          globalThis.__TFJS_PEFT_WASM_PATH__ = wasmPath;
          const runtime = await import(runtimeUrl);
          return runtime.probe(backend);
        },
        { runtimeUrl, backend, wasmPath: `${origin}/wasm/` },
      );
      row.info = Object.entries(info)
        .filter(([key]) => key !== 'backend')
        .map(([key, value]) => `${key}=${value}`)
        .join(' ');
      console.log(`\n${bold(`[${backend}]`)} ${dim(row.info)}`);
    } catch (error) {
      row.status = 'init failed';
      console.log(
        `\n${bold(`[${backend}]`)} ${red(`backend did not initialise: ${mapStack(String(error.message ?? error))}`)}`,
      );
      failures.push({
        backend,
        file: '(backend init)',
        name: 'initialise',
        text: String(error.message ?? error),
      });
    } finally {
      await probePage.close();
    }

    if (row.status === 'ok') {
      for (const file of testFiles) {
        row.files++;
        current = { file, names: [] };
        console.log(`  ${bold(file)}`);
        const page = await context.newPage();
        if (!options.silent) {
          page.on('console', (message) => {
            const type = message.type();
            const line = `      ${dim(`console.${type === 'warning' ? 'warn' : type}:`)} ${message.text()}`;
            console.log(line);
          });
        }
        let crash = null;
        page.on(
          'crash',
          () => (crash = new Error('the page crashed (out of memory or a GPU process failure?)')),
        );
        const fileStarted = performance.now();
        let timer;
        const timedOut = new Promise((resolve) => {
          timer = setTimeout(() => resolve('timeout'), options.fileTimeoutMs);
        });
        let outcome;
        try {
          await page.goto(`${origin}/`);
          outcome = await Promise.race([
            page.evaluate(
              async ({ runtimeUrl, options }) => {
                globalThis.__TFJS_PEFT_WASM_PATH__ = options.wasmPath;
                const runtime = await import(runtimeUrl);
                await runtime.run(options);
                return 'done';
              },
              {
                runtimeUrl,
                options: {
                  backend,
                  file: toUrl(path.join(repoRoot, file)),
                  setupFiles: setupUrls,
                  testTimeout,
                  wasmPath: `${origin}/wasm/`,
                },
              },
            ),
            timedOut,
          ]);
        } catch (error) {
          outcome = crash ?? error;
        } finally {
          clearTimeout(timer);
        }
        const fileMs = performance.now() - fileStarted;
        await page.close().catch(() => undefined);
        const done = current.done;
        const fileErrors = [];
        if (outcome === 'timeout')
          fileErrors.push(
            `time box of ${seconds(options.fileTimeoutMs)} exceeded (--file-timeout); remaining tests did not run`,
          );
        else if (outcome !== 'done') fileErrors.push(`the page failed: ${outcome?.message ?? outcome}`);
        for (const error of done?.errors ?? []) fileErrors.push(formatError(error, mapStack));
        if (fileErrors.length > 0) {
          row.fileErrors++;
          const text = fileErrors.join('\n\n');
          console.log(`    ${red('✗ file error:')}\n${indent(text, 8)}`);
          failures.push({ backend, file, name: '(file)', text });
        }
        console.log(dim(`    ${seconds(fileMs)}`));
      }
    }
    await context.close();
    row.ms = performance.now() - backendStarted;
  }

  await browser.close();
  server.close();

  if (failures.length > 0) {
    console.log(`\n${bold(red(`Failures (${failures.length}):`))}`);
    for (const failure of failures)
      console.log(`  ${red('✗')} [${failure.backend}] ${failure.file} › ${failure.name}`);
  }
  console.log(`\n${bold('Summary')}`);
  const header = ['backend', 'status', 'files', 'passed', 'failed', 'skipped', 'todo', 'file errors', 'time'];
  const rows = summary.map((row) =>
    [
      row.backend,
      row.status,
      row.files,
      row.passed,
      row.failed,
      row.skipped,
      row.todo,
      row.fileErrors,
      seconds(row.ms),
    ].map(String),
  );
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  const line = (cells) => '  ' + cells.map((cell, column) => cell.padEnd(widths[column])).join('  ');
  console.log(line(header));
  console.log(dim(line(widths.map((width) => '-'.repeat(width)))));
  for (const row of rows) console.log(line(row));
  const ok = failures.length === 0 && summary.every((row) => row.status === 'ok');
  console.log(ok ? green('\nAll browser tests passed.') : red('\nBrowser tests failed.'));
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
