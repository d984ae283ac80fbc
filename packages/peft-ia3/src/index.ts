// Importing this package registers IA³ with @tfjs-peft/core (getPeftModel, PeftModel.fromPretrained).
import './ia3-method';

export { IA3Config } from './ia3-config';
export type { IA3ConfigOptions } from './ia3-config';
export { IA3Dense } from './ia3-dense';
export type { IA3AdapterSettings, IA3DenseArgs } from './ia3-dense';
export { ia3Method } from './ia3-method';
