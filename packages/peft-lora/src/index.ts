// Importing this package registers LoRA with @tfjs-peft/core (getPeftModel, PeftModel.fromPretrained).
import './lora-method';

export { LoraConfig } from './lora-config';
export type { LoraConfigOptions, LoraInit, LoraBias } from './lora-config';
export { LoraLayer } from './lora-layer';
export type { LoraAdapter, LoraAdapterSettings, LoraLayerArgs } from './lora-layer';
export { LoraDense } from './lora-dense';
export type { LoraDenseArgs } from './lora-dense';
export { LoraConv2D } from './lora-conv2d';
export { LoraEmbedding } from './lora-embedding';
export { LoraBiasLayer, TrainedBias, biasVariableOf } from './lora-trained-bias';
export { loraMethod } from './lora-method';
export { addWeightedLoraAdapter, COMBINATION_TYPES } from './lora-weighted-adapter';
export type { CombinationType } from './lora-weighted-adapter';
export { singularValueDecomposition } from './singular-value-decomposition';
export type { SingularValueDecomposition } from './singular-value-decomposition';
