import type * as tfl from '@tensorflow/tfjs-layers';
import { PeftError } from '@tfjs-peft/core';
import { MultiHeadAttentionCore } from './layers/multi-head-attention-core';

type LayerLike = tfl.layers.Layer & { layers?: tfl.layers.Layer[]; baseLayer?: unknown };

/** Every attention core in the model: in nested models, and inside wrappers (prefix tuning's `baseLayer`). */
function attentionCores(layer: LayerLike, found: Set<MultiHeadAttentionCore>): void {
  if (layer instanceof MultiHeadAttentionCore) found.add(layer);
  for (const child of layer.layers ?? []) attentionCores(child as LayerLike, found);
  const base = layer.baseLayer;
  if (base != null && typeof base === 'object' && 'getClassName' in base)
    attentionCores(base as LayerLike, found);
}

/**
 * Gradient checkpointing for the transformers of this package (Hugging Face's
 * `model.gradient_checkpointing_enable()`): each attention core keeps only its inputs for the
 * backward pass and computes its scores and softmax again there. Those are [batch, heads, length,
 * length] per block — the part of a step's memory that grows with the square of the sequence
 * length — so long sequences fit in less memory, for the price of one more attention forward pass
 * per block in each step. Gradients are unchanged (the same ops run again). Works on a model already
 * adapted by any PEFT method. Returns how many attention cores were switched.
 */
export function enableGradientCheckpointing(model: tfl.LayersModel, enabled = true): number {
  if (!Array.isArray((model as { layers?: unknown } | null | undefined)?.layers)) {
    throw new PeftError('enableGradientCheckpointing: expected a tf.LayersModel (with layers)');
  }
  const cores = new Set<MultiHeadAttentionCore>();
  attentionCores(model as unknown as LayerLike, cores);
  for (const core of cores) core.recompute = enabled;
  return cores.size;
}
