// Fills kernels the wasm backend lacks (gather and convolution-filter gradients).
import './wasm-kernel-gaps';

// The contract every tfjs-peft method implements, and the model-level lifecycle built on it.
export { getPeftModel } from './get-peft-model';
export { PeftModel, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from './peft-model';
export type { LoadAdapterOptions, SaveAdapterOptions, ModuleNameMapping } from './peft-model';
export {
  PeftConfig,
  TASK_TYPES,
  targetModulesFromJson,
  targetModulesToJson,
  validateTargetModules,
} from './peft-config';
export type { TargetModules, TaskType } from './peft-config';
export { registerPeftMethod, getPeftMethod, registeredPeftTypes } from './peft-method-registry';
export type { PeftMethod, AdapterFileKeys, WeightedAdapterRequest } from './peft-method-registry';
export { isPeftLayer } from './peft-layer';
export type { PeftLayer } from './peft-layer';
export { matchTargetLayers, moduleKey, editDistance } from './target-matching';
export type { MatchOptions } from './target-matching';
export { collectLayers, outputLayerNames, rebuildModel } from './model-graph';
export { layerIndexOf, filterLayersToTransform } from './layer-index';
export type { LayerTransform } from './model-graph';
export { countParameters, formatTrainableParameters } from './parameter-count';
export type { TrainableParameterCount } from './parameter-count';
export {
  applyFrozenDense,
  configureFrozenDense,
  frozenDense,
  frozenTransposeCacheSize,
  releaseFrozenTransposes,
  FUSABLE_ACTIVATIONS,
} from './frozen-dense';
export type { FrozenDenseOptions, FrozenTransposeCache, FusableActivation } from './frozen-dense';
export { FusedAdamOptimizer, fusedAdam, fusedAdamW } from './fused-adam';
export type { FusedAdamOptions } from './fused-adam';
export {
  variableGradsReleasingEarly,
  minimizeReleasingEarly,
  GradientComputationError,
  UnsupportedTfjsEngineError,
} from './eager-release-gradients';
export type { GradientApplier, GradientComputationProblem } from './eager-release-gradients';
export { releaseEarly, releasesEarly } from './release-early';
export { recomputeInBackward } from './recompute-in-backward';
export type { RecomputeOptions, RecomputedFunction } from './recompute-in-backward';
export { WASM_KERNELS_FILLED } from './wasm-kernel-gaps';
export {
  registerWasmBatchMatMul,
  unregisterWasmBatchMatMul,
  wasmBatchMatMulCalls,
  wasmBatchMatMulRegistered,
  WASM_BATCH_MAT_MUL_MIN_ENTRY_WORK,
} from './wasm-batch-mat-mul';
export { embeddingLookup } from './embedding-lookup';
export {
  withSparseEmbeddingGradients,
  embeddingGradientRows,
  sparseEmbeddingGradientsRecording,
  SparseEmbeddingScopeError,
} from './sparse-embedding-gradients';
export { releaseLayerWeights } from './release-layer-weights';
export { ModulesToSaveWrapper, injectModulesToSave } from './modules-to-save-wrapper';
export { parseSafetensors, serializeSafetensors } from './safetensors';
export type { SafetensorsDtype, SafetensorsFile, SafetensorsLimits, SafetensorsTensor } from './safetensors';
export { assertFiniteAdapterTensors, NonFiniteAdapterValueError } from './adapter-validation';
export { nonFiniteLossGuard, NonFiniteLossError } from './non-finite-guard';
export type { GuardedModel, NonFiniteLossGuard, NonFiniteLossGuardOptions } from './non-finite-guard';
export { parseJsonObject } from './safe-json';
export {
  resolveAdapterStore,
  MemoryAdapterStore,
  checkAdapterName,
  DEFAULT_MAX_FILE_BYTES,
} from './adapter-store';
export type { AdapterStore } from './adapter-store';
export { selectBackend, BACKEND_PREFERENCE } from './select-backend';
export type { SelectBackendOptions } from './select-backend';
export {
  defaultWasmThreadCount,
  prepareWasmThreads,
  setWasmThreadCount,
  wasmThreadCount,
  MAX_WASM_THREADS,
} from './wasm-threads';
export type { WasmBackendModule } from './wasm-threads';
export {
  requireBoolean,
  requireInteger,
  requireIntegerList,
  requireNumber,
  requireNumberRecord,
  requireOneOf,
  requireStringList,
  rejectUnknownFields,
} from './config-validation';
export {
  PeftError,
  PeftConfigError,
  TargetNotFoundError,
  UnsupportedLayerError,
  AdapterNameError,
  UnknownPeftTypeError,
  AdapterFormatError,
  AdapterMismatchError,
  NonFiniteWeightError,
  AdapterNotMergeableError,
  AdapterIOError,
} from './errors';
