import {
  customGrad,
  reshape,
  scatterND,
  tidy,
  type GradSaveFunc,
  type Tensor,
  type Tensor1D,
  type Tensor2D,
} from '@tensorflow/tfjs-core';
import { gatherRows } from './gather-rows';
import { recordEmbeddingGradient, sparseEmbeddingGradientsRecording } from './sparse-embedding-gradients';

/**
 * Looks up rows of `table` ([vocabSize, dim]) for integer `ids` of any shape; returns
 * [...ids.shape, dim].
 *
 * The gradient with respect to the table is written back with `tf.scatterND`, which sums the
 * rows of repeated ids. The stock gradient of `tf.gather` needs `UnsortedSegmentSum`, which the
 * wasm backend lacks and the cpu backend runs pathologically slowly on a large table; this one
 * works on every backend. The ids get no gradient.
 *
 * Inside a `withSparseEmbeddingGradients` scope (opened by `fusedAdam({ sparseEmbeddings: true })`'s
 * `minimize`, so by `model.fit`), the table gradient is recorded with the ids it came from, so that
 * optimizer updates only the looked-up rows; see sparse-embedding-gradients.ts.
 */
export function embeddingLookup(table: Tensor2D, ids: Tensor): Tensor {
  return tidy(() => {
    const [vocabSize, dim] = table.shape;
    const flatIds = reshape(ids, [-1]);
    const lookup = customGrad((...args: (Tensor | GradSaveFunc)[]) => {
      const weights = args[0] as Tensor2D;
      const save = args[1] as GradSaveFunc;
      save([flatIds]);
      return {
        value: gatherRows(weights, flatIds),
        gradFunc: (dy: Tensor, saved: Tensor[]) => {
          const gradient = scatterND(reshape(saved[0], [-1, 1]), reshape(dy, [-1, dim]), [vocabSize, dim]);
          if (sparseEmbeddingGradientsRecording()) recordEmbeddingGradient(gradient, saved[0] as Tensor1D);
          return gradient;
        },
      };
    });
    const rows = lookup(table) as Tensor2D;
    return reshape(rows, [...ids.shape, dim]);
  });
}
