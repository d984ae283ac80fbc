import * as tf from '@tensorflow/tfjs-core';

/**
 * Rows `ids` ([n], int32) of a [rows, …] tensor: the one row lookup that embeddingLookup and
 * fusedAdam's sparse updates share. On wasm through GatherNd: tfjs-backend-wasm 4.22's GatherV2
 * takes ~21 ms for 1,024 rows of an 8002 × 256 table where GatherNd takes ~2.5 ms (the same values,
 * measured in Node, 1 thread); elsewhere GatherV2 (cpu's GatherNd is ~3× slower than its GatherV2).
 * GatherNd does not check its indices (an id past the table reads whatever memory follows), so on
 * wasm the ids are checked here first, as GatherV2 checks them on cpu and tensorflow; wasm's memory
 * is on the CPU, so reading the ids costs no transfer.
 */
export function gatherRows(table: tf.Tensor, ids: tf.Tensor): tf.Tensor {
  if (tf.getBackend() !== 'wasm') return tf.gather(table, ids);
  const rows = table.shape[0]!;
  for (const id of ids.dataSync()) {
    if (!(id >= 0 && id < rows)) {
      throw new RangeError(
        `embedding lookup: the token id ${id} is not a row of the table, [0, ${rows - 1}]`,
      );
    }
  }
  return tf.gatherND(table, tf.reshape(ids, [-1, 1]));
}
