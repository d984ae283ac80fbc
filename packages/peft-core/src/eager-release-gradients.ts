import * as tf from '@tensorflow/tfjs-core';
import { PeftError } from './errors';

/**
 * Gradients of a scalar loss with respect to variables, as `tf.variableGrads` computes them, but with
 * a lower peak of tensor memory.
 *
 * Why: tfjs's own backward pass keeps every tensor the forward pass saved for its gradients, and
 * every intermediate gradient, until the whole backward pass ends, so a training step peaks at
 * roughly saved activations + all intermediate gradients. Here each saved tensor is released as soon
 * as the last tape node that reads it has run its gradient, each intermediate gradient as soon as its
 * node has consumed it, and tensors saved by nodes that do not lie between the variables and the
 * loss (everything below the lowest trainable parameter, e.g. a frozen embedding lookup) right after
 * the forward pass. The peak falls to about the saved activations alone, which is where PEFT gains:
 * a frozen layer (frozenDense) saves nothing for a weight gradient it never computes.
 *
 * The same gradient functions run in the same order as in tfjs, so the gradients are the ones
 * `tf.variableGrads` returns. The tape is read through tfjs engine internals (present in tfjs 4.x);
 * an engine without them is refused with {@link UnsupportedTfjsEngineError}.
 */

/** Why a gradient could not be computed (the same conditions `tf.variableGrads` rejects). */
export type GradientComputationProblem =
  | 'not-a-function'
  | 'not-variables'
  | 'no-trainable-variables'
  | 'not-a-tensor'
  | 'not-a-scalar'
  | 'no-connection'
  | 'missing-gradient'
  | 'bad-gradient';

/** The loss function, the variable list or a gradient function broke the contract of `tf.variableGrads`. */
export class GradientComputationError extends PeftError {
  constructor(
    readonly problem: GradientComputationProblem,
    detail: string,
  ) {
    super(`variableGradsReleasingEarly: ${detail}`);
  }
}

/** The running tfjs engine lacks the tape internals that early release reads (a tfjs other than 4.x). */
export class UnsupportedTfjsEngineError extends PeftError {
  constructor(readonly missing: string) {
    super(
      `variableGradsReleasingEarly needs tfjs 4.x engine internals, but this engine has no ${missing}; ` +
        'use tf.variableGrads / optimizer.minimize instead',
    );
  }
}

/** One recorded kernel or customGrad call: what the engine pushes to its tape (tfjs 4.x). */
interface TapeNode {
  kernelName: string;
  /** Read only for ids, shapes and dtypes: the forward originals are disposed at the end of f. */
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  /** The engine's own kept clones, which the node's gradient reads; released here after its last use. */
  saved: tf.Tensor[];
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
}

/** The narrow slice of tfjs's Engine this module uses. */
interface RecordingEngine {
  startTape(): void;
  endTape(): void;
  registeredVariables: Record<string, tf.Variable>;
  state: { gradientDepth: number; activeTape: TapeNode[] | null };
}

function recordingEngine(): RecordingEngine {
  const engine = tf.engine() as unknown as Partial<RecordingEngine>;
  if (typeof engine.startTape !== 'function') throw new UnsupportedTfjsEngineError('startTape()');
  if (typeof engine.endTape !== 'function') throw new UnsupportedTfjsEngineError('endTape()');
  if (engine.state === undefined || typeof engine.state.gradientDepth !== 'number') {
    throw new UnsupportedTfjsEngineError('state.gradientDepth');
  }
  if (engine.registeredVariables === undefined) throw new UnsupportedTfjsEngineError('registeredVariables');
  return engine as RecordingEngine;
}

function checkTapeNode(node: Partial<TapeNode>): asserts node is TapeNode {
  if (
    node === null ||
    typeof node !== 'object' ||
    typeof node.inputs !== 'object' ||
    !Array.isArray(node.outputs) ||
    !Array.isArray(node.saved)
  ) {
    throw new UnsupportedTfjsEngineError('tape nodes with inputs, outputs and saved tensors');
  }
}

/** The trainable variables to differentiate, chosen and checked as tf.variableGrads does. */
function trainableVariables(
  engine: RecordingEngine,
  varList: tf.Variable[] | undefined,
): { trainable: tf.Variable[]; frozenNamed: tf.Variable[] } {
  if (varList !== undefined && varList !== null) {
    if (!Array.isArray(varList) || !varList.every((v) => v instanceof tf.Variable)) {
      throw new GradientComputationError('not-variables', 'varList must be an array of tf.Variable');
    }
  }
  const candidates = varList ?? Object.values(engine.registeredVariables);
  const trainable = candidates.filter((v) => v.trainable);
  if (trainable.length === 0) {
    throw new GradientComputationError(
      'no-trainable-variables',
      `expects at least one trainable variable, but none of the ${candidates.length} variables is trainable`,
    );
  }
  return { trainable, frozenNamed: varList ? varList.filter((v) => !v.trainable) : [] };
}

/**
 * The nodes on a path from a variable to the loss, in tape order, each with the names of its inputs
 * that depend on a variable (only those get a gradient, as in tfjs).
 */
function nodesBetween(
  tape: TapeNode[],
  variables: tf.Variable[],
  loss: tf.Tensor,
): Array<{ node: TapeNode; differentiableInputs: string[] }> {
  const dependsOnVariable = new Set<number>(variables.map((v) => v.id));
  const differentiableInputs: string[][] = tape.map((node) => {
    const names = Object.keys(node.inputs).filter((name) => dependsOnVariable.has(node.inputs[name]!.id));
    if (names.length > 0) for (const output of node.outputs) dependsOnVariable.add(output.id);
    return names;
  });
  const leadsToLoss = new Set<number>([loss.id]);
  const onPath: boolean[] = new Array<boolean>(tape.length).fill(false);
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (!node.outputs.some((output) => leadsToLoss.has(output.id))) continue;
    for (const input of Object.values(node.inputs)) leadsToLoss.add(input.id);
    onPath[i] = differentiableInputs[i]!.length > 0;
  }
  return tape.flatMap((node, i) =>
    onPath[i] ? [{ node, differentiableInputs: differentiableInputs[i]! }] : [],
  );
}

/** The first tensor id f can create: anything below it existed before f and is never released here. */
function nextTensorIdBoundary(): number {
  const probe = tf.scalar(0);
  const boundary = probe.id;
  probe.dispose();
  return boundary;
}

/**
 * `tf.variableGrads(f, varList)` with early release: the same `{ value, grads }` (grads keyed by
 * variable name; every trainable registered variable when `varList` is omitted; a variable of
 * `varList` that is not trainable gets `null`), the same gradients, but each tensor the forward
 * pass saved is disposed as soon as the backward pass no longer needs it, and each intermediate
 * gradient as soon as its node has used it — see the module comment for why. Tensors created
 * outside f (inputs, variables, kept tensors) are never touched. If f or a gradient function throws,
 * every tensor this call created is disposed before the error propagates (tfjs would keep the saved
 * tensors of a throwing f alive forever).
 *
 * Called while another gradient is being recorded (higher-order gradients, e.g. inside
 * `tf.grad`), the outer backward pass still needs every saved tensor, so this falls back to
 * `tf.variableGrads` unchanged.
 */
export function variableGradsReleasingEarly(
  f: () => tf.Scalar,
  varList?: tf.Variable[],
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  if (typeof f !== 'function') {
    throw new GradientComputationError('not-a-function', 'f must be a function returning a scalar loss');
  }
  const engine = recordingEngine();
  const { trainable, frozenNamed } = trainableVariables(engine, varList);
  if (engine.state.gradientDepth > 0) return tf.variableGrads(f, varList);

  const createdBefore = nextTensorIdBoundary();
  const variableIds = new Set(trainable.map((v) => v.id));
  let tape: TapeNode[] = [];
  let value: tf.Tensor | undefined;
  const gradients = new Map<number, tf.Tensor>();
  try {
    engine.startTape();
    try {
      value = tf.tidy('forward', f) as unknown as tf.Tensor | undefined;
    } finally {
      engine.endTape();
      tape = engine.state.activeTape ?? [];
      engine.state.activeTape = null;
    }
    tape.forEach(checkTapeNode);
    if (!(value instanceof tf.Tensor)) {
      throw new GradientComputationError('not-a-tensor', 'f must return a tensor (the scalar loss)');
    }
    if (value.rank !== 0) {
      throw new GradientComputationError(
        'not-a-scalar',
        `f must return a scalar, but it returned a rank-${value.rank} tensor`,
      );
    }
    const loss = value;
    const path = nodesBetween(tape, trainable, loss);
    if (path.length === 0) {
      throw new GradientComputationError(
        'no-connection',
        'no trainable variable is connected to the result of f: make sure the operations that use the variables run inside f',
      );
    }

    // Which tensors may be released, and after which node. Only tensors created by f, never the loss.
    const releasable = (t: tf.Tensor) => t.id >= createdBefore && t !== loss && !(t instanceof tf.Variable);
    const lastReader = new Map<tf.Tensor, number>();
    path.forEach(({ node }, index) => {
      for (const saved of node.saved) lastReader.set(saved, Math.min(lastReader.get(saved) ?? index, index));
    });
    // Saved by a node off the path: nothing will read it.
    for (const node of tape) {
      for (const saved of node.saved) if (!lastReader.has(saved) && releasable(saved)) saved.dispose();
    }

    gradients.set(loss.id, tf.onesLike(loss));
    for (let index = path.length - 1; index >= 0; index--) {
      const { node, differentiableInputs } = path[index]!;
      runNodeBackward(node, differentiableInputs, gradients, new Set(node.saved));
      // Backward runs from the last node to the first, so the first reader is the last one to run.
      for (const saved of node.saved)
        if (lastReader.get(saved) === index && releasable(saved)) saved.dispose();
      for (const output of node.outputs) {
        if (variableIds.has(output.id)) continue;
        gradients.get(output.id)?.dispose();
        gradients.delete(output.id);
      }
    }
    const grads: tf.NamedTensorMap = {};
    for (const variable of trainable) {
      const gradient = gradients.get(variable.id);
      if (gradient !== undefined) grads[variable.name] = gradient;
      gradients.delete(variable.id);
    }
    for (const variable of frozenNamed) (grads as Record<string, tf.Tensor | null>)[variable.name] = null;
    // Gradients of tensors that are neither a node output nor a variable: none in a normal tape.
    for (const leftover of gradients.values()) leftover.dispose();
    gradients.clear();
    return { value: loss as tf.Scalar, grads };
  } catch (error) {
    const createdByThisCall = (t: unknown) => t instanceof tf.Tensor && t.id >= createdBefore;
    for (const node of tape) {
      for (const saved of node.saved ?? []) {
        if (createdByThisCall(saved) && saved !== value) saved.dispose();
      }
    }
    for (const gradient of gradients.values()) gradient.dispose();
    if (createdByThisCall(value)) value!.dispose();
    throw error;
  }
}

/**
 * Runs one node's gradient function with the accumulated gradients of its outputs and adds the
 * result into the gradients of its differentiable inputs. Everything the gradient function creates
 * besides those results is disposed here, node by node (tfjs keeps it until the backward pass ends).
 */
function runNodeBackward(
  node: TapeNode,
  differentiableInputs: string[],
  gradients: Map<number, tf.Tensor>,
  savedByNode: Set<tf.Tensor>,
): void {
  const gradient = node.gradient;
  if (gradient === undefined) {
    throw new GradientComputationError(
      'missing-gradient',
      `no gradient function is registered for ${node.kernelName}`,
    );
  }
  const dys = node.outputs.map((output) => gradients.get(output.id) ?? null);
  const owned = new Set<tf.Tensor>(gradients.values());
  const inputGradients = tf.tidy(() => {
    const thunks = gradient(dys);
    return differentiableInputs.map((name) => {
      const thunk = thunks[name];
      if (typeof thunk !== 'function') {
        throw new GradientComputationError(
          'missing-gradient',
          `the gradient of ${node.kernelName} has no entry for its input "${name}" (it has ${Object.keys(thunks).join(', ')})`,
        );
      }
      const dx = thunk();
      const input = node.inputs[name]!;
      if (dx.dtype !== 'float32') {
        throw new GradientComputationError(
          'bad-gradient',
          `the gradient of ${node.kernelName} for input "${name}" has dtype ${dx.dtype}, not float32`,
        );
      }
      if (!tf.util.arraysEqual(dx.shape, input.shape)) {
        throw new GradientComputationError(
          'bad-gradient',
          `the gradient of ${node.kernelName} for input "${name}" has shape [${dx.shape}], not the input's [${input.shape}]`,
        );
      }
      // A gradient function may hand back a tensor it was given (dy, a saved tensor): take our own
      // handle on it, so releasing dy or the saved tensor cannot release this gradient.
      return owned.has(dx) || savedByNode.has(dx) ? tf.clone(dx) : dx;
    });
  });
  differentiableInputs.forEach((name, i) => {
    const input = node.inputs[name]!;
    const dx = inputGradients[i]!;
    const accumulated = gradients.get(input.id);
    if (accumulated === undefined) {
      gradients.set(input.id, dx);
      return;
    }
    gradients.set(input.id, tf.add(accumulated, dx));
    accumulated.dispose();
    dx.dispose();
  });
}

/** An optimizer as minimizeReleasingEarly needs it (any tf.Optimizer, fusedAdam included). */
export interface GradientApplier {
  applyGradients(variableGradients: tf.NamedTensorMap | Array<{ name: string; tensor: tf.Tensor }>): void;
}

/**
 * One training step in one line, as `optimizer.minimize(f, true, varList)` but with the gradients of
 * {@link variableGradsReleasingEarly}: computes the gradients, applies them, disposes them, and
 * returns the loss scalar (the caller disposes it).
 */
export function minimizeReleasingEarly(
  optimizer: GradientApplier,
  f: () => tf.Scalar,
  varList?: tf.Variable[],
): tf.Scalar {
  const { value, grads } = variableGradsReleasingEarly(f, varList);
  try {
    // In varList order; a frozen variable named there has a null gradient: nothing to apply.
    const order = varList === undefined ? Object.keys(grads) : varList.map((v) => v.name);
    optimizer.applyGradients(
      order.filter((name) => grads[name] != null).map((name) => ({ name, tensor: grads[name]! })),
    );
  } catch (error) {
    value.dispose();
    throw error;
  } finally {
    tf.dispose(Object.values(grads).filter((g) => g != null));
  }
  return value;
}
