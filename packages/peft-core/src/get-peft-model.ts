import type * as tfl from '@tensorflow/tfjs-layers';
import { PeftConfigError } from './errors';
import type { PeftConfig } from './peft-config';
import { PeftModel } from './peft-model';

/**
 * Attaches a new adapter to `model` (Sequential or functional, built in code or loaded from
 * model.json): base weights are frozen and shared, only the adapter trains. `peft.model` is the
 * adapted tf.LayersModel to compile and fit.
 */
export function getPeftModel(model: tfl.LayersModel, config: PeftConfig, adapterName = 'default'): PeftModel {
  if (model == null || !Array.isArray((model as { layers?: unknown }).layers)) {
    throw new PeftConfigError('model', model, 'expected a tf.LayersModel');
  }
  const peft = new PeftModel(model);
  peft.injectAdapter(adapterName, config);
  peft.setAdapter(adapterName);
  return peft;
}
