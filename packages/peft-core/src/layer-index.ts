import type * as tfl from '@tensorflow/tfjs-layers';
import { PeftConfigError } from './errors';

const DEFAULT_PATTERNS = ['layer', 'layers', 'h', 'block', 'blocks'];

/**
 * The block index in a layer's name (`encoder/layer_3/attention/query` → 3, `bert.encoder.layer.3.…`
 * → 3), found after one of `patterns` followed by `_`, `.` or `/`; null when there is none.
 */
export function layerIndexOf(
  layerName: string,
  patterns: readonly string[] = DEFAULT_PATTERNS,
): number | null {
  for (const pattern of patterns) {
    const escaped = pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const match = new RegExp(`(?:^|[./])${escaped}[._/](\\d+)(?:[./]|$)`).exec(layerName);
    if (match) return Number(match[1]);
  }
  return null;
}

/** PEFT's `layers_to_transform`: keeps the layers of the listed blocks; a selection left empty is an error. */
export function filterLayersToTransform<L extends tfl.layers.Layer>(
  layers: readonly L[],
  indices: readonly number[] | null,
  pattern: string | null = null,
): L[] {
  if (indices === null) return [...layers];
  const patterns = pattern ? [pattern] : DEFAULT_PATTERNS;
  const kept = layers.filter((l) => {
    const index = layerIndexOf(l.name, patterns);
    return index !== null && indices.includes(index);
  });
  if (kept.length === 0) {
    throw new PeftConfigError(
      'layersToTransform',
      indices,
      `no targeted layer lies in those blocks (targeted: ${layers.map((l) => l.name).join(', ')})`,
    );
  }
  return kept;
}
