import {
  customGrad,
  gather,
  reshape,
  scatterND,
  tidy,
  type GradSaveFunc,
  type Tensor,
  type Tensor2D,
} from '@tensorflow/tfjs-core';

/**
 * Looks up rows of `table` ([vocabSize, dim]) for integer `ids` of any shape; returns
 * [...ids.shape, dim].
 *
 * The gradient with respect to the table is written back with `tf.scatterND`, which sums the
 * rows of repeated ids. The stock gradient of `tf.gather` needs `UnsortedSegmentSum`, which the
 * wasm backend lacks and the cpu backend runs pathologically slowly on a large table; this one
 * works on every backend. The ids get no gradient.
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
        value: gather(weights, flatIds),
        gradFunc: (dy: Tensor, saved: Tensor[]) =>
          scatterND(reshape(saved[0], [-1, 1]), reshape(dy, [-1, dim]), [vocabSize, dim]),
      };
    });
    const rows = lookup(table) as Tensor2D;
    return reshape(rows, [...ids.shape, dim]);
  });
}
