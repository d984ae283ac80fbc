export { describeEachBackend } from './describe-each-backend';
export type { DescribeEachBackendOptions } from './describe-each-backend';
export {
  ALL_BACKENDS,
  KNOWN_BACKENDS,
  DEFAULT_OPTIONAL_BACKENDS,
  selectedBackends,
  optionalBackends,
  parseBackendList,
} from './backend-selection';
export type { BackendName } from './backend-selection';
export { expectTensorsClose, expectArraysClose, DEFAULT_TOLERANCE } from './expect-tensors-close';
export type { NumericArrayLike } from './expect-tensors-close';
export { snapshotWeights, expectWeightsBitIdentical, bytesEqual } from './snapshot-weights';
export type { WeightSnapshot, WeightSource } from './snapshot-weights';
export { expectNoTensorLeak, memoryDelta } from './expect-no-tensor-leak';
export type { MemoryDelta } from './expect-no-tensor-leak';
export { checkGradients } from './check-gradients';
export type { CheckGradientsOptions, GradientCheckResult } from './check-gradients';
export { checkVariableGradients } from './check-variable-gradients';
export type { CheckVariableGradientsOptions, VariableGradientCheckResult } from './check-variable-gradients';
export {
  readTorchFixture,
  readSafetensorsFile,
  buildTfjsModelFromFixture,
  fixtureInputs,
  type TorchFixture,
  type TorchFixtureIo,
  type TorchFixtureModel,
  type TorchFixtureLayer,
  type TorchFixtureAdapter,
  type TorchTensor,
} from './torch-fixtures';
export * from './fuzz';
export * from './soak';
export * from './peft-soak-subject';
export * from './peft-method-contract';
