// Soak test helper: N training steps with other lifecycle actions interleaved (adapter switching,
// merge/unmerge, save/load…), sampling tf.memory() after every step. After a warm-up (optimizer slots,
// first use of each adapter) the live tensor count and numBytes must stay exactly flat to the end.
// Method-agnostic: each method package passes its own model, step and actions.
import * as tf from '@tensorflow/tfjs-core';

export interface SoakAction {
  name: string;
  /** Runs after the training step of every step index divisible by `every` (step 0 excluded). */
  every: number;
  /**
   * Must be balanced within the call: what it creates it disposes (merge → use → unmerge, save → load
   * → unload…), so that memory at the end of a step does not depend on the actions taken.
   */
  run(step: number): void | Promise<void>;
}

export interface SoakSubject {
  /** One training step. Its tensors are its own business: nothing may stay alive but the model's state. */
  trainStep(step: number): void | Promise<void>;
  actions?: SoakAction[];
  /** Frees everything setup created; memory must return to what it was before setup. */
  dispose(): void | Promise<void>;
}

export interface SoakOptions {
  /** Number of training steps. */
  steps: number;
  /** Memory must be flat from this step to the end (default 10). Every action should have run once before it. */
  flatFrom?: number;
  /** Builds the model, optimizer and data; runs under the current backend. */
  setup(): SoakSubject | Promise<SoakSubject>;
  /** Called with a line per sampling (every `logEvery` steps, default never), e.g. console.log. */
  log?: (line: string) => void;
  logEvery?: number;
}

export interface SoakReport {
  steps: number;
  flatFrom: number;
  /** tf.memory() at the end of each step. */
  tensors: number[];
  bytes: number[];
  /** How often each action ran. */
  actionCounts: Record<string, number>;
  /** Wall-clock milliseconds for the whole soak. */
  milliseconds: number;
}

/** Soak steps from the environment: `long` → longSteps, a number → that, otherwise ciSteps. */
export function soakSteps(envValue: string | undefined, ciSteps: number, longSteps: number): number {
  if (envValue === 'long') return longSteps;
  const n = Number(envValue);
  return Number.isSafeInteger(n) && n > 0 ? n : ciSteps;
}

/**
 * Runs the soak and throws (naming the first step where memory moved, and by how much) unless the
 * tensor count and numBytes are identical at the end of every step from `flatFrom` on, and unless
 * disposing the subject brings both back to where they were before setup.
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const { steps, flatFrom = 10, log, logEvery = 0 } = options;
  if (steps <= flatFrom) throw new Error(`runSoak: steps (${steps}) must exceed flatFrom (${flatFrom})`);
  const start = performance.now();
  const before = tf.memory();
  const subject = await options.setup();
  const tensors: number[] = [];
  const bytes: number[] = [];
  const actionCounts: Record<string, number> = {};
  for (const action of subject.actions ?? []) {
    if (!(action.every >= 1) || action.every >= flatFrom) {
      throw new Error(
        `runSoak: action ${action.name} runs every ${action.every} steps; it must run at least once before step ${flatFrom}`,
      );
    }
    actionCounts[action.name] = 0;
  }
  try {
    for (let step = 0; step < steps; step++) {
      await subject.trainStep(step);
      for (const action of subject.actions ?? []) {
        if (step > 0 && step % action.every === 0) {
          await action.run(step);
          actionCounts[action.name]++;
        }
      }
      const memory = tf.memory();
      tensors.push(memory.numTensors);
      bytes.push(memory.numBytes);
      if (logEvery > 0 && step % logEvery === 0)
        log?.(`step ${step}: ${memory.numTensors} tensors, ${memory.numBytes} bytes`);
      if (
        step > flatFrom &&
        (memory.numTensors !== tensors[flatFrom] || memory.numBytes !== bytes[flatFrom])
      ) {
        throw new Error(
          `memory is not flat: at step ${step} ${memory.numTensors} tensors / ${memory.numBytes} bytes, ` +
            `at step ${flatFrom} ${tensors[flatFrom]} tensors / ${bytes[flatFrom]} bytes ` +
            `(actions this step: ${
              (subject.actions ?? [])
                .filter((a) => step > 0 && step % a.every === 0)
                .map((a) => a.name)
                .join(', ') || 'none'
            })`,
        );
      }
    }
  } finally {
    await subject.dispose();
  }
  const after = tf.memory();
  if (after.numTensors !== before.numTensors || after.numBytes !== before.numBytes) {
    throw new Error(
      `disposing the soak subject left ${after.numTensors - before.numTensors} tensors / ${after.numBytes - before.numBytes} bytes behind`,
    );
  }
  return { steps, flatFrom, tensors, bytes, actionCounts, milliseconds: performance.now() - start };
}
