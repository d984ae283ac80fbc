import { clone, dispose, keep, type Tensor, type Tensor1D } from '@tensorflow/tfjs-core';
import { PeftError } from './errors';

/**
 * Which rows of an embedding table a gradient touches, so that an optimizer can update only those
 * rows (LazyAdam / SparseAdam semantics, `fusedAdam({ sparseEmbeddings: true })`).
 *
 * tfjs hands an optimizer dense gradients: the table gradient `embeddingLookup` produces is a
 * [vocab, dim] tensor that is zero outside the looked-up rows, and nothing says which rows those are.
 * While a {@link withSparseEmbeddingGradients} scope is open, `embeddingLookup` remembers, for each
 * table gradient it produces, the ids it looked up (int32 [n], in lookup order, repeats kept). The
 * record is keyed by the gradient tensor itself, so it describes exactly that tensor:
 *
 * - a table used only by one `embeddingLookup` in the step: tfjs passes that very tensor on to the
 *   optimizer, which finds the record and updates the recorded rows only;
 * - a table also used elsewhere (an LM head tied to it, two lookups of the same table, a gradient
 *   clipped or scaled before it is applied): the gradient the optimizer receives is a new tensor (a
 *   sum or a product), has no record, and gets the ordinary dense update. Sparse is never applied
 *   to a gradient whose rows outside the ids may be non-zero.
 *
 * Lifetime: the records (one kept int32 tensor each) live in the scope that was open when the
 * gradient was computed and are disposed when that scope's function returns or throws. Outside any
 * scope nothing is recorded and `embeddingLookup` costs nothing extra. Scopes nest (records go to
 * the innermost, lookups search all open ones). The function must be synchronous: a tfjs training
 * step (`optimizer.minimize`, `tf.variableGrads` + `applyGradients`) is, and so no other model's
 * step can run inside it; an async function is refused.
 */

/** A {@link withSparseEmbeddingGradients} scope was misused (an async function). */
export class SparseEmbeddingScopeError extends PeftError {
  constructor(detail: string) {
    super(`withSparseEmbeddingGradients: ${detail}`);
  }
}

/** The rows behind one recorded table gradient. */
interface RowRecord {
  ids: Tensor1D;
  vocabSize: number;
  dim: number;
}

const openScopes: Map<Tensor, RowRecord>[] = [];

/**
 * Runs `fn` (synchronous) with sparse embedding gradients recorded: every table gradient that
 * `embeddingLookup` produces during `fn` carries the ids it was looked up with, so an optimizer with
 * sparse embedding updates (`fusedAdam({ sparseEmbeddings: true })`) called during `fn` updates
 * only those rows. Returns what `fn` returns; the records are released when `fn` returns or throws.
 *
 * `FusedAdamOptimizer.minimize` (and so `model.fit`) opens a scope itself when `sparseEmbeddings`
 * is set; open one yourself around `tf.variableGrads(...)` + `optimizer.applyGradients(...)` or
 * `minimizeReleasingEarly(...)`.
 */
export function withSparseEmbeddingGradients<T>(fn: () => T): T {
  if (typeof fn !== 'function') throw new SparseEmbeddingScopeError('expected a function');
  const records = new Map<Tensor, RowRecord>();
  openScopes.push(records);
  try {
    const result = fn();
    if (result !== null && typeof (result as { then?: unknown })?.then === 'function') {
      throw new SparseEmbeddingScopeError(
        'fn returned a promise; the scope must hold one synchronous training step (records cannot ' +
          'survive an await without mixing with other steps), e.g. wrap optimizer.minimize(...)',
      );
    }
    return result;
  } finally {
    const index = openScopes.lastIndexOf(records);
    if (index >= 0) openScopes.splice(index, 1);
    for (const { ids } of records.values()) dispose(ids);
    records.clear();
  }
}

/** Whether a {@link withSparseEmbeddingGradients} scope is open (embeddingLookup records only then). */
export function sparseEmbeddingGradientsRecording(): boolean {
  return openScopes.length > 0;
}

/**
 * Called by `embeddingLookup`'s gradient: remembers that `gradient` ([vocabSize, dim]) is zero
 * outside the rows `ids` (int32 [n]) in the innermost open scope. Takes its own handle on the ids.
 */
export function recordEmbeddingGradient(gradient: Tensor, ids: Tensor1D): void {
  const scope = openScopes[openScopes.length - 1];
  if (scope === undefined) return;
  const [vocabSize, dim] = gradient.shape as [number, number];
  scope.set(gradient, { ids: keep(clone(ids)), vocabSize, dim });
}

/**
 * The ids (int32 [n], repeats possible) whose rows are the only non-zero rows of `gradient`, when
 * `gradient` is, unchanged, a table gradient `embeddingLookup` produced inside an open scope and
 * still has the shape [vocabSize, dim] it was recorded with; otherwise undefined (update densely).
 * The tensor belongs to the scope: do not dispose it.
 */
export function embeddingGradientRows(gradient: Tensor): Tensor1D | undefined {
  for (let i = openScopes.length - 1; i >= 0; i--) {
    const record = openScopes[i]!.get(gradient);
    if (record === undefined) continue;
    const [vocabSize, dim] = gradient.shape;
    if (gradient.isDisposed || gradient.rank !== 2 || vocabSize !== record.vocabSize || dim !== record.dim) {
      return undefined;
    }
    return record.ids;
  }
  return undefined;
}
