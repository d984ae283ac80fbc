/**
 * Thin SVD of a small dense matrix, in float64, by one-sided Jacobi rotations (Hestenes): columns are
 * rotated pairwise until orthogonal; their norms are the singular values. tfjs has no SVD op, and the
 * matrices here (a layer's ΔW) are small enough for exact, dependency-free CPU arithmetic.
 */
export interface SingularValueDecomposition {
  /** [rows, k] column-major-free: u[i * k + j]. */
  u: Float64Array;
  /** k singular values, descending. */
  s: Float64Array;
  /** [cols, k]: v[i * k + j]. */
  v: Float64Array;
  rows: number;
  cols: number;
  k: number;
}

export function singularValueDecomposition(
  matrix: ArrayLike<number>,
  rows: number,
  cols: number,
  { maxSweeps = 60, tolerance = 1e-12 } = {},
): SingularValueDecomposition {
  if (rows < cols) {
    // Decompose the transpose and swap U and V.
    const transposed = new Float64Array(rows * cols);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) transposed[j * rows + i] = matrix[i * cols + j];
    const t = singularValueDecomposition(transposed, cols, rows, { maxSweeps, tolerance });
    return { u: t.v, s: t.s, v: t.u, rows, cols, k: t.k };
  }
  const k = cols;
  // Work on columns: a[j] is column j (length rows); v starts as the identity.
  const a = Array.from({ length: cols }, (_, j) => {
    const column = new Float64Array(rows);
    for (let i = 0; i < rows; i++) column[i] = matrix[i * cols + j];
    return column;
  });
  const v = Array.from({ length: cols }, (_, j) => {
    const column = new Float64Array(cols);
    column[j] = 1;
    return column;
  });
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let rotated = false;
    for (let p = 0; p < cols - 1; p++) {
      for (let q = p + 1; q < cols; q++) {
        const ap = a[p];
        const aq = a[q];
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < rows; i++) {
          alpha += ap[i] * ap[i];
          beta += aq[i] * aq[i];
          gamma += ap[i] * aq[i];
        }
        if (Math.abs(gamma) <= tolerance * Math.sqrt(alpha * beta) || gamma === 0) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = Math.sign(zeta || 1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < rows; i++) {
          const x = ap[i];
          const y = aq[i];
          ap[i] = c * x - s * y;
          aq[i] = s * x + c * y;
        }
        const vp = v[p];
        const vq = v[q];
        for (let i = 0; i < cols; i++) {
          const x = vp[i];
          const y = vq[i];
          vp[i] = c * x - s * y;
          vq[i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = a.map((column) => Math.sqrt(column.reduce((sum, x) => sum + x * x, 0)));
  const order = norms.map((_, j) => j).sort((x, y) => norms[y] - norms[x]);
  const u = new Float64Array(rows * k);
  const vOut = new Float64Array(cols * k);
  const s = new Float64Array(k);
  order.forEach((j, rank) => {
    s[rank] = norms[j];
    for (let i = 0; i < rows; i++) u[i * k + rank] = norms[j] > 0 ? a[j][i] / norms[j] : 0;
    for (let i = 0; i < cols; i++) vOut[i * k + rank] = v[j][i];
  });
  return { u, s, v: vOut, rows, cols, k };
}
