// Importing this package registers BitFit with @tfjs-peft/core (getPeftModel, PeftModel.fromPretrained).
import './bitfit-method';

export { BitFitConfig, PAPER_SUBSET_SEGMENTS } from './bitfit-config';
export type { BitFitConfigOptions, BitFitSubset } from './bitfit-config';
export { BitFitDense } from './bitfit-dense';
export type { BitFitDenseArgs } from './bitfit-dense';
export { BitFitLayerNorm, LAYER_NORM_CLASSES } from './bitfit-layer-norm';
export type { BitFitLayerNormArgs } from './bitfit-layer-norm';
export { bitFitMethod, planBitFit } from './bitfit-method';
export type { BitFitPlan } from './bitfit-method';
export { NoBiasError } from './bitfit-errors';
