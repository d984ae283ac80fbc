// A small jest-compatible runtime for one test file in one browser page: it installs the jest
// globals (describe, it/test, hooks, skip/only/todo/each, expect, a subset of `jest`), imports
// the setup files and the test file, runs the collected tests in order and reports each result
// to the runner through the `__tfjsPeftReport` binding (see run.mjs).
import { expect } from 'expect';
import { ModuleMocker } from 'jest-mock';

type Fn = (...args: any[]) => unknown;
type Mode = 'run' | 'skip' | 'only' | 'todo';
type Hooks = Record<
  'beforeAll' | 'afterAll' | 'beforeEach' | 'afterEach',
  Array<{ fn: Fn; timeout?: number }>
>;
interface Block {
  kind: 'block';
  name: string;
  parent?: Block;
  children: Array<Block | TestCase>;
  hooks: Hooks;
  mode: Mode;
}
interface TestCase {
  kind: 'test';
  name: string;
  parent: Block;
  fn?: Fn;
  timeout?: number;
  mode: Mode;
  failing: boolean;
}
export interface ReportedError {
  message: string;
  stack?: string;
}
export interface RunOptions {
  backend: string;
  file: string;
  setupFiles: string[];
  testTimeout: number;
}

declare global {
  var __tfjsPeftReport: (event: unknown) => Promise<void>;
  var __TFJS_PEFT_BACKENDS__: unknown;
  var __TFJS_PEFT_OPTIONAL_BACKENDS__: unknown;
}

const report = (event: Record<string, unknown>) => globalThis.__tfjsPeftReport(event);

const newBlock = (name: string, parent: Block | undefined, mode: Mode): Block => ({
  kind: 'block',
  name,
  parent,
  children: [],
  hooks: { beforeAll: [], afterAll: [], beforeEach: [], afterEach: [] },
  mode,
});

const root = newBlock('', undefined, 'run');
let current = root;
let collecting = true;
let defaultTimeout = 5000;
let hasOnly = false;
/** Errors raised outside any test (window errors, unhandled rejections) land on the running test. */
let pendingErrors: unknown[] = [];

function toReported(error: unknown): ReportedError {
  if (error instanceof Error) {
    return {
      message: `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}`,
      stack: error.stack,
    };
  }
  return { message: `Thrown value: ${safeString(error)}` };
}

function safeString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'function') return `[Function ${value.name || 'anonymous'}]`;
  if (typeof value === 'bigint') return `${value}n`;
  try {
    const json = JSON.stringify(value);
    return json === undefined ? String(value) : json;
  } catch {
    return String(value);
  }
}

// ---- test.each / describe.each -----------------------------------------------------------

function formatTitle(title: string, args: unknown[], index: number): string {
  const first = args[0];
  if (args.length === 1 && first !== null && typeof first === 'object' && !Array.isArray(first)) {
    title = title.replace(/\$([A-Za-z_][\w.]*)/g, (match, path: string) => {
      let value: any = first;
      for (const key of path.split('.')) {
        if (value === null || value === undefined || !(key in Object(value))) return match;
        value = value[key];
      }
      return safeString(value);
    });
  }
  let next = 0;
  return title.replace(/%([sdifjoOp#%])/g, (match, flag: string) => {
    if (flag === '%') return '%';
    if (flag === '#') return String(index);
    if (next >= args.length) return match;
    const value = args[next++];
    switch (flag) {
      case 'd':
      case 'i':
        return String(flag === 'i' ? Math.trunc(Number(value)) : Number(value));
      case 'f':
        return String(Number(value));
      case 's':
        return typeof value === 'string' ? value : safeString(value);
      default:
        return safeString(value);
    }
  });
}

/** Rows of a `.each` table; each row is the argument list for one case. */
function eachRows(table: unknown, values: unknown[]): unknown[][] {
  if (Array.isArray(table) && 'raw' in table) {
    // Tagged template: first line holds the headings `a | b | c`, then one value per cell.
    const headings = (table as unknown as TemplateStringsArray)[0]
      .split('|')
      .map((heading) => heading.trim())
      .filter((heading) => heading.length > 0);
    const rows: unknown[][] = [];
    for (let start = 0; start < values.length; start += headings.length) {
      const row: Record<string, unknown> = {};
      headings.forEach((heading, column) => (row[heading] = values[start + column]));
      rows.push([row]);
    }
    return rows;
  }
  if (!Array.isArray(table)) throw new Error('.each expects an array or a tagged template table');
  return table.map((row) => (Array.isArray(row) ? row : [row]));
}

function withEach<T extends (name: string, fn: Fn, timeout?: number) => void>(define: T) {
  return (table: unknown, ...values: unknown[]) =>
    (name: string, fn: Fn, timeout?: number) => {
      eachRows(table, values).forEach((row, index) => {
        const body = fn.length > row.length ? (done: unknown) => fn(...row, done) : () => fn(...row);
        define(formatTitle(name, row, index), body as Fn, timeout);
      });
    };
}

// ---- collection ----------------------------------------------------------------------------

function assertCollecting(what: string) {
  if (!collecting)
    throw new Error(`${what} cannot be called while tests run; call it at the top level or in describe`);
}

function defineBlock(mode: Mode) {
  return (name: string, fn: Fn) => {
    assertCollecting('describe');
    if (mode === 'only') hasOnly = true;
    const block = newBlock(String(name), current, mode);
    current.children.push(block);
    const parent = current;
    current = block;
    try {
      const result = fn();
      if (result instanceof Promise)
        throw new Error(`describe '${name}' returned a Promise: describe callbacks must be synchronous`);
    } finally {
      current = parent;
    }
  };
}

function defineTest(mode: Mode, failing = false) {
  return (name: string, fn?: Fn, timeout?: number) => {
    assertCollecting('it/test');
    if (mode === 'only') hasOnly = true;
    if (fn === undefined && mode !== 'todo') mode = 'todo';
    current.children.push({ kind: 'test', name: String(name), parent: current, fn, timeout, mode, failing });
  };
}

function defineHook(kind: keyof Hooks) {
  return (fn: Fn, timeout?: number) => {
    assertCollecting(kind);
    current.hooks[kind].push({ fn, timeout });
  };
}

function makeDescribe() {
  const describe: any = defineBlock('run');
  describe.skip = defineBlock('skip');
  describe.only = defineBlock('only');
  describe.each = withEach(describe);
  describe.skip.each = withEach(describe.skip);
  describe.only.each = withEach(describe.only);
  return describe;
}

function makeTest() {
  const test: any = defineTest('run');
  test.skip = defineTest('skip');
  test.only = defineTest('only');
  test.todo = (name: string) => defineTest('todo')(name);
  test.failing = defineTest('run', true);
  test.concurrent = test; // run one after another: the backends are not re-entrant anyway
  test.each = withEach(test);
  test.skip.each = withEach(test.skip);
  test.only.each = withEach(test.only);
  test.concurrent.each = test.each;
  return test;
}

function makeJestObject() {
  const mocker = new ModuleMocker(globalThis);
  const unsupported = (name: string) => () => {
    throw new Error(`jest.${name} is not supported by the browser test runner (tools/browser-tests)`);
  };
  return {
    fn: mocker.fn.bind(mocker),
    spyOn: mocker.spyOn.bind(mocker),
    isMockFunction: mocker.isMockFunction.bind(mocker),
    mocked: <T>(value: T) => value,
    clearAllMocks: () => mocker.clearAllMocks(),
    resetAllMocks: () => mocker.resetAllMocks(),
    restoreAllMocks: () => mocker.restoreAllMocks(),
    setTimeout: (ms: number) => {
      defaultTimeout = ms;
    },
    mock: unsupported('mock'),
    unstable_mockModule: unsupported('unstable_mockModule'),
    useFakeTimers: unsupported('useFakeTimers'),
    requireActual: unsupported('requireActual'),
  };
}

function installGlobals() {
  const describe = makeDescribe();
  const test = makeTest();
  Object.assign(globalThis, {
    describe,
    fdescribe: describe.only,
    xdescribe: describe.skip,
    it: test,
    test,
    fit: test.only,
    xit: test.skip,
    xtest: test.skip,
    beforeAll: defineHook('beforeAll'),
    afterAll: defineHook('afterAll'),
    beforeEach: defineHook('beforeEach'),
    afterEach: defineHook('afterEach'),
    expect,
    jest: makeJestObject(),
  });
}

// ---- execution -----------------------------------------------------------------------------

/** Runs `fn` (promise- or done-style) with a time limit. */
function callWithTimeout(fn: Fn, timeout: number, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `Exceeded timeout of ${timeout} ms for ${what}. Pass a timeout (3rd argument) or call jest.setTimeout() if it needs longer.`,
          ),
        ),
      timeout,
    );
    const finish = (error?: unknown) => {
      clearTimeout(timer);
      if (error === undefined) resolve();
      else reject(error);
    };
    try {
      if (fn.length > 0) {
        const done: any = (error?: unknown) =>
          finish(error === undefined || error === null ? undefined : error);
        done.fail = (error: unknown) => finish(error ?? new Error('done.fail() called'));
        fn(done);
      } else {
        Promise.resolve(fn()).then(
          () => finish(),
          (error) => finish(error ?? new Error('Rejected with undefined')),
        );
      }
    } catch (error) {
      finish(error);
    }
  });
}

const isSkipped = (node: Block | TestCase): boolean =>
  node.mode === 'skip' || node.mode === 'todo' || (node.parent !== undefined && isSkipped(node.parent));
const isFocused = (node: Block | TestCase): boolean =>
  node.mode === 'only' || (node.parent !== undefined && isFocused(node.parent));
const isEnabled = (test: TestCase) => !isSkipped(test) && (!hasOnly || isFocused(test));
const hasEnabledTests = (block: Block): boolean =>
  block.children.some((child) => (child.kind === 'test' ? isEnabled(child) : hasEnabledTests(child)));

function titlePath(node: Block | TestCase): string[] {
  const names: string[] = [];
  for (let at: Block | TestCase | undefined = node; at !== undefined && at !== root; at = at.parent)
    names.unshift(at.name);
  return names;
}

function chain(block: Block): Block[] {
  const blocks: Block[] = [];
  for (let at: Block | undefined = block; at !== undefined; at = at.parent) blocks.unshift(at);
  return blocks;
}

const counts = { passed: 0, failed: 0, skipped: 0, todo: 0 };

async function runTest(test: TestCase, file: string, inheritedErrors: unknown[]) {
  const names = titlePath(test);
  if (!isEnabled(test)) {
    const status = test.mode === 'todo' ? 'todo' : 'skipped';
    counts[status === 'todo' ? 'todo' : 'skipped']++;
    await report({ type: 'test', status, titlePath: names, duration: 0, errors: [] });
    return;
  }
  const errors: unknown[] = [...inheritedErrors];
  const timeout = test.timeout ?? defaultTimeout;
  const started = performance.now();
  expect.setState({
    assertionCalls: 0,
    expectedAssertionsNumber: null,
    isExpectingAssertions: false,
    suppressedErrors: [],
    currentTestName: names.join(' '),
    testPath: file,
  });
  pendingErrors = [];
  if (errors.length === 0) {
    const blocks = chain(test.parent);
    let ranBefore = true;
    for (const block of blocks) {
      for (const hook of block.hooks.beforeEach) {
        if (!ranBefore) break;
        try {
          await callWithTimeout(hook.fn, hook.timeout ?? timeout, 'a beforeEach hook');
        } catch (error) {
          errors.push(error);
          ranBefore = false;
        }
      }
    }
    if (ranBefore) {
      try {
        await callWithTimeout(test.fn!, timeout, `test '${names.join(' › ')}'`);
      } catch (error) {
        errors.push(error);
      }
      if (errors.length === 0) {
        for (const assertionError of expect.extractExpectedAssertionsErrors())
          errors.push(assertionError.error);
      }
    }
    for (const block of [...blocks].reverse()) {
      for (const hook of block.hooks.afterEach) {
        try {
          await callWithTimeout(hook.fn, hook.timeout ?? timeout, 'an afterEach hook');
        } catch (error) {
          errors.push(error);
        }
      }
    }
    errors.push(...pendingErrors);
    pendingErrors = [];
  }
  let failed = errors.length > 0;
  if (test.failing) {
    failed = !failed;
    if (failed)
      errors.push(
        new Error(
          'Failing test passed even though it was supposed to fail. Remove `.failing` to remove error.',
        ),
      );
    else errors.length = 0;
  }
  counts[failed ? 'failed' : 'passed']++;
  await report({
    type: 'test',
    status: failed ? 'failed' : 'passed',
    titlePath: names,
    duration: performance.now() - started,
    errors: errors.map(toReported),
  });
}

async function runBlock(block: Block, file: string, inheritedErrors: unknown[], fileErrors: unknown[]) {
  const enabled = hasEnabledTests(block);
  const errors = [...inheritedErrors];
  if (enabled && errors.length === 0) {
    for (const hook of block.hooks.beforeAll) {
      try {
        await callWithTimeout(hook.fn, hook.timeout ?? defaultTimeout, 'a beforeAll hook');
      } catch (error) {
        errors.push(error);
        break;
      }
    }
  }
  for (const child of block.children) {
    if (child.kind === 'test') await runTest(child, file, errors);
    else await runBlock(child, file, errors, fileErrors);
  }
  if (enabled) {
    for (const hook of block.hooks.afterAll) {
      try {
        await callWithTimeout(hook.fn, hook.timeout ?? defaultTimeout, 'an afterAll hook');
      } catch (error) {
        fileErrors.push(error);
      }
    }
  }
}

/** Collects and runs one test file; resolves when every result has been reported. */
export async function run(options: RunOptions): Promise<void> {
  defaultTimeout = options.testTimeout;
  const fileErrors: unknown[] = [];
  const onError = (event: ErrorEvent) => pendingErrors.push(event.error ?? new Error(event.message));
  const onRejection = (event: PromiseRejectionEvent) => pendingErrors.push(event.reason);
  addEventListener('error', onError);
  addEventListener('unhandledrejection', onRejection);
  const started = performance.now();
  installGlobals();
  try {
    // As in the Node jest run: the backend under test is what describeEachBackend selects (from
    // these globals, or process.env if a test clears them); any other test runs on cpu.
    globalThis.__TFJS_PEFT_BACKENDS__ = options.backend;
    globalThis.__TFJS_PEFT_OPTIONAL_BACKENDS__ = '';
    process.env.TFJS_PEFT_BACKENDS = options.backend;
    process.env.TFJS_PEFT_OPTIONAL_BACKENDS = '';
    (globalThis as any).process = process;
    const tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-backend-cpu');
    await tf.setBackend('cpu');
    for (const setupFile of options.setupFiles) await import(/* @vite-ignore */ setupFile);
    await import(/* @vite-ignore */ options.file);
    collecting = false;
    await runBlock(root, options.file, [], fileErrors);
  } catch (error) {
    fileErrors.push(error);
  }
  fileErrors.push(...pendingErrors);
  removeEventListener('error', onError);
  removeEventListener('unhandledrejection', onRejection);
  await report({
    type: 'file-done',
    counts,
    duration: performance.now() - started,
    errors: fileErrors.map(toReported),
  });
}

/** Initialises `backend` and describes what the browser gave it (for the runner's header line). */
export async function probe(backend: string): Promise<Record<string, unknown>> {
  const { prepareBackend } = await import('../../packages/test-utils/src/prepare-backend.browser');
  const tf = await import('@tensorflow/tfjs-core');
  const started = performance.now();
  await prepareBackend(backend);
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend('${backend}') failed`);
  const info: Record<string, unknown> = {
    backend: tf.getBackend(),
    initMs: Math.round(performance.now() - started),
  };
  if (backend === 'webgl') {
    info.webglVersion = tf.env().getNumber('WEBGL_VERSION');
    info.float32Render = tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED');
    const gl = document.createElement('canvas').getContext('webgl2');
    const debug = gl?.getExtension('WEBGL_debug_renderer_info');
    if (gl && debug) info.renderer = gl.getParameter(debug.UNMASKED_RENDERER_WEBGL);
  } else if (backend === 'webgpu') {
    const adapter = await (navigator as any).gpu?.requestAdapter();
    if (adapter?.info) info.adapter = `${adapter.info.vendor} ${adapter.info.architecture}`.trim();
  } else if (backend === 'wasm') {
    info.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    info.threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  }
  // A first kernel proves the backend computes, not only that it registered.
  const product = tf.tidy(() =>
    tf.matMul(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      tf.tensor2d([
        [5, 6],
        [7, 8],
      ]),
    ),
  );
  const values = Array.from(await product.data());
  product.dispose();
  if (values.join() !== '19,22,43,50')
    throw new Error(`backend '${backend}' computed [${values}] for a 2×2 matMul, expected [19,22,43,50]`);
  return info;
}
