// Importing this package registers LoRA with @tfjs-peft/core (getPeftModel, PeftModel.fromPretrained).
import './lora-method';

export { LoraConfig } from './lora-config';
export type { LoraConfigOptions, LoraInit, LoraBias } from './lora-config';
export { LoraDense } from './lora-dense';
export type { LoraAdapterSettings, LoraDenseArgs } from './lora-dense';
export { loraMethod } from './lora-method';
export { addWeightedLoraAdapter, COMBINATION_TYPES } from './lora-weighted-adapter';
export type { CombinationType } from './lora-weighted-adapter';
export { singularValueDecomposition } from './singular-value-decomposition';
export type { SingularValueDecomposition } from './singular-value-decomposition';
