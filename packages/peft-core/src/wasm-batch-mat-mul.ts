import * as tf from '@tensorflow/tfjs-core';

/**
 * A BatchMatMul kernel for the wasm backend that runs batched and transposed products through the
 * backend's own XNNPACK path. tfjs-backend-wasm 4.22 sends a product to XNNPACK only when it is 2-D
 * (batch 1) with no transpose flag; everything else — attention's QKᵀ and PV, and every product of
 * their gradients — takes a scalar loop, ~10× slower.
 *
 * How: the wasm module's own BatchMatMul entry point, called once per batch entry on temporary
 * tensor ids registered at memory offsets inside the operands and the output (no copies), so each
 * call is the untransposed 2-D XNNPACK product. XNNPACK caches an operator (the packed weights) per
 * id of the right-hand operand; the temporary ids are disposed after each call, which frees that
 * operator, so the next batch entry packs its own. XNNPACK's fully-connected operator could take a
 * transposed right-hand operand natively, but tfjs always asks it to transpose the weights itself,
 * so a transposed operand is transposed once for the whole batch (the backend's Transpose kernel),
 * or the product is computed transposed, (AB)ᵀ = BᵀAᵀ, whichever moves fewer elements.
 *
 * Products it does not take go to the kernel it replaced: non-float32, empty, already 2-D
 * untransposed (XNNPACK already, with its operator cached across calls), small ones (the scalar loop
 * wins below a few thousand multiply-adds per entry), and batch broadcasts other than one operand
 * of batch 1 (tfjs 4.22's kernels index those by `b % batch`, which we keep as it is).
 */

interface WasmModule {
  cwrap(name: string, returnType: null, argTypes: string[]): (...args: unknown[]) => void;
  tfjs: {
    registerTensor(id: number, size: number, memoryOffset: number): void;
    disposeData(id: number): void;
  };
}

interface WasmBackend {
  wasm: WasmModule;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } | undefined };
  /** The backend's next tensor id (private in tfjs; taking ids from it keeps ours unique). */
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
}

type MatMulEntry = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

/** Below this many multiply-adds per batch entry the stock loop is faster than a fresh XNNPACK operator. */
export const WASM_BATCH_MAT_MUL_MIN_ENTRY_WORK = 4096;

const entryPoints = new WeakMap<object, MatMulEntry>();

function matMulEntry(module: WasmModule): MatMulEntry {
  let entry = entryPoints.get(module);
  if (entry === undefined) {
    const argTypes = ['number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number'];
    entry = module.cwrap('BatchMatMul', null, argTypes) as MatMulEntry;
    entryPoints.set(module, entry);
  }
  return entry;
}

function shapeBytes(shape: readonly number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/** A float32 operand as the kernel sees it: `batch` row-major matrices of rows × cols, contiguous. */
interface Operand {
  dataId: object;
  batch: number;
  rows: number;
  cols: number;
}

const calls = { xnnpack: 0, stock: 0 };

/** How many products this kernel ran through XNNPACK and how many it handed to the stock kernel. */
export function wasmBatchMatMulCalls(): { xnnpack: number; stock: number } {
  return { ...calls };
}

function isWasmBackend(backend: unknown): backend is WasmBackend {
  const candidate = backend as Partial<WasmBackend> | null;
  return (
    typeof candidate?.dataIdNextNumber === 'number' &&
    typeof candidate.wasm?.cwrap === 'function' &&
    typeof candidate.wasm.tfjs?.registerTensor === 'function' &&
    typeof candidate.dataIdMap?.get === 'function'
  );
}

/** Transposes the last two axes of a [batch, rows, cols] operand with the backend's Transpose kernel. */
function transposed(backend: WasmBackend, operand: Operand): tf.TensorInfo {
  const kernel = tf.getKernel('Transpose', 'wasm');
  if (kernel === undefined) throw new Error('wasm BatchMatMul (tfjs-peft): no Transpose kernel');
  const x: tf.TensorInfo = {
    dataId: operand.dataId,
    shape: [operand.batch, operand.rows, operand.cols],
    dtype: 'float32',
  };
  return kernel.kernelFunc({
    inputs: { x },
    backend: backend as unknown as tf.KernelBackend,
    attrs: { perm: [0, 2, 1] },
  }) as tf.TensorInfo;
}

/**
 * out[i] = x[i]·y[i] for `batch` entries (an operand of batch 1 is shared), all untransposed, into
 * `out` ([batch, x.rows, y.cols]).
 */
function untransposedProduct(
  backend: WasmBackend,
  x: Operand,
  y: Operand,
  outInfo: tf.TensorInfo,
  batch: number,
): void {
  const run = matMulEntry(backend.wasm);
  const [m, k, n] = [x.rows, x.cols, y.cols];
  const { registerTensor, disposeData } = backend.wasm.tfjs;
  const xData = backend.dataIdMap.get(x.dataId)!;
  const yData = backend.dataIdMap.get(y.dataId)!;
  const out = backend.dataIdMap.get(outInfo.dataId)!;
  // y always goes in under a temporary id: XNNPACK caches the packed weights on the id alone, not
  // the shape, so a reshaped view of a tensor must never meet the operator packed for another view.
  const yId = backend.dataIdNextNumber++;
  const yShape = shapeBytes([1, k, n]);
  if (y.batch === 1) {
    // One product: every entry of x shares y, so x's entries are just more rows.
    try {
      registerTensor(yId, k * n, yData.memoryOffset);
      run(xData.id, shapeBytes([1, x.batch * m, k]), 3, yId, yShape, 3, false, false, out.id);
    } finally {
      disposeData(yId); // frees the XNNPACK operator cached on it (its packed weights)
    }
    return;
  }
  const xId = backend.dataIdNextNumber++;
  const outId = backend.dataIdNextNumber++;
  const xShape = shapeBytes([1, m, k]);
  for (let i = 0; i < batch; i++) {
    try {
      registerTensor(xId, m * k, xData.memoryOffset + (x.batch === 1 ? 0 : i * m * k * 4));
      registerTensor(yId, k * n, yData.memoryOffset + i * k * n * 4);
      registerTensor(outId, m * n, out.memoryOffset + i * m * n * 4);
      run(xId, xShape, 3, yId, yShape, 3, false, false, outId);
    } finally {
      disposeData(xId);
      disposeData(yId);
      disposeData(outId);
    }
  }
}

/** Elements moved by the transposes a plan needs, plus the weights XNNPACK packs, per product. */
function planCost(
  transposeX: boolean,
  transposeY: boolean,
  xSize: number,
  ySize: number,
  outSize: number,
  transposeOut: boolean,
  weightsPacked: number,
): number {
  return (transposeX ? xSize : 0) + (transposeY ? ySize : 0) + (transposeOut ? outSize : 0) + weightsPacked;
}

interface Product {
  a: Operand;
  b: Operand;
  transposeA: boolean;
  transposeB: boolean;
  m: number;
  k: number;
  n: number;
  batch: number;
  outShape: number[];
}

/** The product's dimensions when this kernel takes it, else null (the stock kernel does). */
function plan(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): Product | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) {
    return null;
  }
  const aRows = a.shape[a.shape.length - 2]!;
  const aCols = a.shape[a.shape.length - 1]!;
  const bRows = b.shape[b.shape.length - 2]!;
  const bCols = b.shape[b.shape.length - 1]!;
  const [m, k] = transposeA ? [aCols, aRows] : [aRows, aCols];
  const [kB, n] = transposeB ? [bCols, bRows] : [bRows, bCols];
  if (k !== kB || m * k * n === 0) return null;
  const aBatch = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const bBatch = tf.util.sizeFromShape(b.shape.slice(0, -2));
  if (aBatch !== bBatch && aBatch !== 1 && bBatch !== 1) return null;
  const batch = Math.max(aBatch, bBatch);
  if (batch === 0 || (batch === 1 && !transposeA && !transposeB)) return null;
  if (m * k * n < WASM_BATCH_MAT_MUL_MIN_ENTRY_WORK) return null;
  let outer: number[];
  try {
    outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  } catch {
    return null; // the stock kernel throws tfjs's own error
  }
  return {
    a: { dataId: a.dataId, batch: aBatch, rows: aRows, cols: aCols },
    b: { dataId: b.dataId, batch: bBatch, rows: bRows, cols: bCols },
    transposeA,
    transposeB,
    m,
    k,
    n,
    batch,
    outShape: [...outer, m, n],
  };
}

/**
 * x·y (x, y transposed first where flagged) into a new [batch, rows of x·y, cols] output, through
 * untransposedProduct, transposing an operand first where it is flagged.
 */
function productOf(
  backend: WasmBackend,
  x: Operand,
  y: Operand,
  transposeX: boolean,
  transposeY: boolean,
  batch: number,
): tf.TensorInfo {
  const temporaries: tf.TensorInfo[] = [];
  try {
    let xu = x;
    let yu = y;
    if (transposeX) {
      const t = transposed(backend, x);
      temporaries.push(t);
      xu = { dataId: t.dataId, batch: x.batch, rows: x.cols, cols: x.rows };
    }
    if (transposeY) {
      const t = transposed(backend, y);
      temporaries.push(t);
      yu = { dataId: t.dataId, batch: y.batch, rows: y.cols, cols: y.rows };
    }
    const out = backend.makeOutput([batch, xu.rows, yu.cols], 'float32');
    try {
      untransposedProduct(backend, xu, yu, out, batch);
    } catch (error) {
      backend.disposeData(out.dataId);
      throw error;
    }
    return out;
  } finally {
    for (const t of temporaries) backend.disposeData(t.dataId);
  }
}

function fastBatchMatMul(backend: WasmBackend, p: Product): tf.TensorInfo {
  const { a, b, transposeA, transposeB, m, k, n, batch } = p;
  const aSize = a.batch * m * k;
  const bSize = b.batch * k * n;
  const outSize = batch * m * n;
  // Directly: A·B, B's entries packed as weights. Swapped: (BᵀAᵀ)ᵀ, Aᵀ's entries packed, the result
  // transposed. A shared (batch-1) weight operand is packed once.
  const direct = planCost(
    transposeA,
    transposeB,
    aSize,
    bSize,
    outSize,
    false,
    b.batch === 1 ? k * n : bSize,
  );
  const swapped = planCost(
    !transposeB,
    !transposeA,
    bSize,
    aSize,
    outSize,
    true,
    a.batch === 1 ? k * m : aSize,
  );
  let out: tf.TensorInfo;
  if (direct <= swapped) {
    out = productOf(backend, a, b, transposeA, transposeB, batch);
  } else {
    const outTransposed = productOf(backend, b, a, !transposeB, !transposeA, batch);
    try {
      out = transposed(backend, { dataId: outTransposed.dataId, batch, rows: n, cols: m });
    } finally {
      backend.disposeData(outTransposed.dataId);
    }
  }
  return { dataId: out.dataId, shape: p.outShape, dtype: 'float32' };
}

interface Installed {
  stock: tf.KernelConfig;
  ours: tf.KernelConfig;
}

let installed: Installed | null = null;

function makeKernel(stock: tf.KernelConfig): tf.KernelConfig {
  const kernelFunc: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const product = isWasmBackend(args.backend) ? plan(a, b, !!transposeA, !!transposeB) : null;
    if (product === null) {
      calls.stock++;
      return stock.kernelFunc(args);
    }
    calls.xnnpack++;
    return fastBatchMatMul(args.backend as unknown as WasmBackend, product);
  };
  return {
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    kernelFunc,
    // The stock kernel's setup (it binds its own entry point) still runs when wasm initialises later.
    ...(stock.setupFunc ? { setupFunc: stock.setupFunc } : {}),
    ...(stock.disposeFunc ? { disposeFunc: stock.disposeFunc } : {}),
  };
}

/**
 * Installs the fast BatchMatMul for the wasm backend in place of the one registered now (kept, and
 * used for the products it does not take). Idempotent. Returns false when no wasm BatchMatMul is
 * registered (import `@tensorflow/tfjs-backend-wasm` first). `selectBackend('wasm')` calls it.
 */
export function registerWasmBatchMatMul(): boolean {
  const current = tf.getKernel('BatchMatMul', 'wasm');
  if (current === undefined) return false;
  if (installed !== null && current === installed.ours) return true;
  const ours = makeKernel(current);
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(ours);
  installed = { stock: current, ours };
  return true;
}

/** Puts back the kernel registerWasmBatchMatMul replaced. Returns false when ours was not installed. */
export function unregisterWasmBatchMatMul(): boolean {
  if (installed === null) return false;
  const { stock, ours } = installed;
  installed = null;
  if (tf.getKernel('BatchMatMul', 'wasm') !== ours) return false;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(stock);
  return true;
}

/** Whether the wasm backend's BatchMatMul is this module's kernel now. */
export function wasmBatchMatMulRegistered(): boolean {
  return installed !== null && tf.getKernel('BatchMatMul', 'wasm') === installed.ours;
}
