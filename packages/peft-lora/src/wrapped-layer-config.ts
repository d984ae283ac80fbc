import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { AdapterNameError } from '@tfjs-peft/core';

/** The layer a wrapper's saved config holds (`{ layer: { className, config } }`), rebuilt from the tfjs registry. */
export function deserializeWrappedLayer(config: tf.serialization.ConfigDict): tfl.layers.Layer {
  const inner = config.layer as { className: string; config: tf.serialization.ConfigDict };
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[inner.className];
  if (!entry)
    throw new AdapterNameError(String(config.name), `wraps an unknown layer class ${inner.className}`);
  const [innerClass, innerFromConfig] = entry;
  return innerFromConfig(innerClass, inner.config) as unknown as tfl.layers.Layer;
}
