export interface WorkerRequest {
  backend: string;
  methods: string[];
  batch: number;
  length: number;
  reduced: string | null;
  steps: number;
  warmup: number;
  inference: boolean;
  inferRuns: number;
  matMulN: number;
  matMulRuns: number;
  profile: boolean;
  printFlops: boolean;
  /** wasm: threads for XNNPACK (1 = the plain SIMD build; more = the threaded build through core's Node loader). */
  wasmThreads?: number;
  /** Count FLOPs and exit (no timing). */
  flopsOnly?: boolean;
  out: string;
}

export interface KernelTime {
  name: string;
  ms: number;
  count: number;
}

export interface MethodResult {
  id: string;
  label: string;
  status: 'ok' | 'skipped' | 'failed';
  note?: string;
  trainableParams?: number;
  runs?: number[];
  medianMs?: number;
  tokensPerS?: number;
  stepGflop?: number;
  gflops?: number;
  /** tf.memory().numBytes between steps (weights, optimizer state, the batch). */
  residentBytes?: number;
  /** tf.profile's peakBytes over one step: the most tensor bytes alive at once. */
  peakBytes?: number;
  leakedTensors?: number;
  kernelsPerStep?: number;
  topKernels?: KernelTime[];
  /** Sum of the profiled kernels' times (kernel-by-kernel, synchronised: slower than a real step). */
  profiledStepMs?: number;
}

export interface InferenceResult {
  forwardGflop: number;
  baseMs: number;
  unmergedMs: number;
  mergedMs: number;
  /** unmerged / base − 1, base measured interleaved with the unmerged runs. */
  unmergedOverhead: number;
  /** merged / base − 1, base measured interleaved with the merged runs. */
  mergedVsBase: number;
  runs: Record<string, number[]>;
}

export interface MatMulResult {
  n: number;
  ms: number;
  gflops: number;
  runs: number[];
}

export interface BackendResult {
  backend: string;
  description: string;
  /** wasm: the XNNPACK thread count the backend reported. */
  wasmThreads?: number;
  status: 'ok' | 'unavailable' | 'failed';
  note?: string;
  batch: number;
  length: number;
  reduced: string | null;
  steps: number;
  warmup: number;
  started: string;
  finished?: string;
  loadAverageAtStart: number[];
  loadAverageAtEnd?: number[];
  matMul?: MatMulResult;
  matMulAfter?: MatMulResult;
  methods: MethodResult[];
  inference?: InferenceResult;
  inferenceNote?: string;
}

/** What tools/bench/torch_reference.py writes. */
export interface TorchResult {
  torch: string;
  peft: string;
  threads: number;
  batch: number;
  length: number;
  date: string;
  machine: string;
  matMul: MatMulResult;
  methods: Record<string, { medianMs: number; runs: number[]; trainableParams: number }>;
  inference: { baseMs: number; unmergedMs: number; mergedMs: number };
}
