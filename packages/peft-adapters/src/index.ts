// Importing this package registers bottleneck adapters with @tfjs-peft/core (getPeftModel, PeftModel.fromPretrained).
import './bottleneck-method';

export { BottleneckConfig, BOTTLENECK_PRESETS } from './bottleneck-config';
export type {
  BottleneckConfigOptions,
  BottleneckPlacement,
  BottleneckNonLinearity,
  BottleneckLayerNorm,
  BottleneckInit,
} from './bottleneck-config';
export { BottleneckAdapter } from './bottleneck-adapter';
export type {
  BottleneckAdapterArgs,
  BottleneckAdapterKind,
  BottleneckAdapterSettings,
  BottleneckComposition,
} from './bottleneck-adapter';
export { bottleneckMethod, setAdapterComposition, TRANSFORMER_BLOCK_SUFFIXES } from './bottleneck-method';
export { BottleneckSizeError, AdapterNotMergeableError } from './bottleneck-errors';
