// Runs one jest `describe` body once per selected tfjs backend, with a tensor-leak check around
// every test. Environment-agnostic: the backend-specific loading lives in ./prepare-backend, which a
// browser runner replaces with its own version.
import * as tf from '@tensorflow/tfjs-core';
import { optionalBackends, selectedBackends, type BackendName } from './backend-selection';
// Namespace import: the browser twin of prepare-backend may export only `prepareBackend`.
import * as backendPreparation from './prepare-backend';

export interface DescribeEachBackendOptions {
  /** Check that every test leaves `tf.memory().numTensors` unchanged (default true). */
  leakCheck?: boolean;
  /** Restrict this block to these backends (intersected with the selected ones), e.g. for a kernel
   * that a backend lacks; prefer fixing the gap over restricting. */
  only?: readonly BackendName[];
}

const warned = new Set<string>();

/** The leak check run after each test: throws when the live tensor count changed. */
export function checkTensorCount(backend: string, tensorsBefore: number, tensorsAfter: number): void {
  if (tensorsAfter === tensorsBefore) return;
  const delta = tensorsAfter - tensorsBefore;
  throw new Error(
    `Tensor leak on backend ${backend}: ${delta > 0 ? `${delta} tensor(s) left alive` : `${-delta} tensor(s) disposed that existed before the test`} ` +
      `(tf.memory().numTensors ${tensorsBefore} before the test, ${tensorsAfter} after). ` +
      'Wrap work in tf.tidy and dispose results, variables, models and optimizers.',
  );
}

function warnSkip(backend: BackendName, reason: string): void {
  if (warned.has(backend)) return;
  warned.add(backend);
  console.warn(`[tfjs-peft] SKIPPED backend ${backend}: ${reason}`);
}

function describeSkipped(title: string, backend: BackendName, reason: string): void {
  warnSkip(backend, reason);
  describe(title, () => {
    test.skip(`SKIPPED ${backend}: ${reason}`, () => undefined);
  });
}

/**
 * `describe(`${name} [${backend}]`, () => fn(backend))` for each backend in `TFJS_PEFT_BACKENDS`
 * (default cpu, wasm, webgpu, tensorflow). Before the block's tests the backend is prepared, set
 * and awaited (`tf.ready()`); after them the previously active backend is restored. Each test must
 * leave the live tensor count as it found it. An optional backend (`TFJS_PEFT_OPTIONAL_BACKENDS`,
 * default tensorflow) that is unavailable becomes one skipped test titled `SKIPPED <backend>: <reason>`
 * plus a console warning; a required backend that cannot be initialised fails the block's tests.
 */
export function describeEachBackend(
  name: string,
  fn: (backend: BackendName) => void,
  options: DescribeEachBackendOptions = {},
): void {
  const optional = optionalBackends();
  const backends = selectedBackends().filter(
    (backend) => options.only === undefined || options.only.includes(backend),
  );
  for (const backend of backends) {
    const title = `${name} [${backend}]`;
    if (optional.includes(backend)) {
      const reason = backendPreparation.backendUnavailableReason?.(backend);
      if (reason !== undefined) {
        describeSkipped(title, backend, reason);
        continue;
      }
    }
    describe(title, () => {
      let previousBackend: string | undefined;
      let tensorsBefore = 0;

      beforeAll(async () => {
        previousBackend = tf.engine().backendName;
        try {
          await backendPreparation.prepareBackend(backend);
        } catch (error) {
          throw new Error(
            `backend ${backend} could not be prepared: ${error instanceof Error ? error.message : error}`,
          );
        }
        if (!(await tf.setBackend(backend))) {
          throw new Error(`tf.setBackend('${backend}') failed (see the warning tfjs printed above)`);
        }
        await tf.ready();
      });

      afterAll(async () => {
        if (
          previousBackend !== undefined &&
          previousBackend !== backend &&
          tf.findBackendFactory(previousBackend) !== null
        ) {
          await tf.setBackend(previousBackend);
        }
      });

      beforeEach(async () => {
        // A test in another block (or this one) may have switched backends.
        if (tf.engine().backendName !== backend) await tf.setBackend(backend);
        tensorsBefore = tf.memory().numTensors;
      });

      if (options.leakCheck ?? true) {
        afterEach(() => checkTensorCount(backend, tensorsBefore, tf.memory().numTensors));
      }

      fn(backend);
    });
  }
}
