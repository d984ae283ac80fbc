import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import {
  AdapterIOError,
  DEFAULT_MAX_FILE_BYTES,
  parseJsonObject,
  parseSafetensors,
  resolveAdapterStore,
  type AdapterStore,
  type SafetensorsTensor,
} from '@tfjs-peft/core';

/** A checkpoint's tensors by name (a parsed `model.safetensors`). */
export type TensorSource = ReadonlyMap<string, Pick<SafetensorsTensor, 'shape' | 'data'>>;

export interface CheckpointReadOptions {
  /** Largest `model.safetensors` read (bytes); default 2 GiB − 1. */
  maxBytes?: number;
  /** Largest `config.json` read (bytes); default 1 MiB. */
  maxConfigBytes?: number;
}

/** A Hugging Face checkpoint folder's two files, read with bounded reads. */
export interface CheckpointFiles {
  config: Record<string, unknown>;
  safetensors: Uint8Array;
}

/**
 * Reads `config.json` and `model.safetensors` from a folder: a path (Node), a `file://`,
 * `http(s)://`, `indexeddb://` or `memory://` URL, or an `AdapterStore` — the stores adapters load
 * through, so every read is bounded (`maxBytes`) and a missing file is an error naming it.
 */
export async function readHuggingFaceCheckpoint(
  source: string | AdapterStore,
  options: CheckpointReadOptions = {},
): Promise<CheckpointFiles> {
  const location = typeof source === 'string' && !/^[a-z]+:\/\//i.test(source) ? `file://${source}` : source;
  const store = resolveAdapterStore(location);
  const configBytes = options.maxConfigBytes ?? 1024 ** 2;
  const read = async (file: string, maxBytes: number) => {
    const bytes = await store.readFile(file, maxBytes);
    if (bytes == null) {
      // An index that is there but over the bound throws: it exists all the same.
      const sharded =
        file === 'model.safetensors' &&
        (await store.readFile('model.safetensors.index.json', configBytes).then(
          (index) => index !== null,
          () => true,
        ));
      throw new AdapterIOError(
        `${store.url}/${file}`,
        sharded ? 'does not exist (sharded checkpoints are not supported)' : 'does not exist',
      );
    }
    return bytes;
  };
  const config = parseJsonObject(await read('config.json', configBytes), 'config.json');
  const safetensors = await read('model.safetensors', options.maxBytes ?? DEFAULT_MAX_FILE_BYTES);
  return { config, safetensors };
}

/**
 * Collects a model's weights from a checkpoint: `add(layer, make)` queues a layer's weights (in
 * `getWeights()` order); `tensor(key, shape)` reads one checkpoint tensor, checking its name and
 * shape; `write()` makes every tensor first — so a missing or misshapen tensor throws before any
 * weight of the model is touched — then sets them and disposes them.
 */
export class CheckpointWeightPlan {
  private readonly plan: Array<[string, () => tf.Tensor[]]> = [];

  constructor(
    private readonly model: LayersModel,
    private readonly weights: TensorSource,
    /** Names the checkpoint kind in errors ("GPT-2 checkpoint: missing tensor …"). */
    private readonly kind: string,
  ) {}

  has(key: string): boolean {
    return this.weights.has(key);
  }

  tensor(key: string, shape: number[]): tf.Tensor {
    const t = this.weights.get(key);
    if (!t) throw new Error(`${this.kind} checkpoint: missing tensor "${key}"`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `${this.kind} checkpoint: "${key}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
    return tf.tensor(t.data, shape, 'float32');
  }

  add(layer: string, make: () => tf.Tensor[]): void {
    this.plan.push([layer, make]);
  }

  /** A layer norm's [gamma, beta] from `<key>.weight` and `<key>.bias`. */
  addLayerNorm(layer: string, key: string): void {
    const [dim] = this.model.getLayer(layer).getWeights()[0].shape;
    this.add(layer, () => [this.tensor(`${key}.weight`, [dim]), this.tensor(`${key}.bias`, [dim])]);
  }

  /**
   * A Dense layer's [kernel [in, out], bias [out]] from `<key>.weight` and `<key>.bias`:
   * `layout: 'linear'` reads nn.Linear's [out, in] and transposes it; `'conv1d'` reads GPT-2's
   * Conv1D [in, out] as it is.
   */
  addDense(layer: string, key: string, layout: 'linear' | 'conv1d'): void {
    const [inp, out] = this.model.getLayer(layer).getWeights()[0].shape as [number, number];
    this.add(layer, () => {
      const bias = this.tensor(`${key}.bias`, [out]);
      if (layout === 'conv1d') return [this.tensor(`${key}.weight`, [inp, out]), bias];
      return [tf.transpose(this.tensor(`${key}.weight`, [out, inp])), bias];
    });
  }

  write(): void {
    const values: Array<[string, tf.Tensor[]]> = [];
    try {
      for (const [layer, make] of this.plan) values.push([layer, tf.tidy(make)]);
    } catch (error) {
      values.forEach(([, ts]) => tf.dispose(ts));
      throw error;
    }
    for (const [layer, ts] of values) {
      this.model.getLayer(layer).setWeights(ts);
      tf.dispose(ts);
    }
  }
}

/**
 * Parses `model.safetensors` (F32, F16 or BF16), builds the model and writes the weights into it;
 * a model whose weights do not load is disposed before the error propagates.
 */
export function modelFromSafetensors(
  safetensors: Uint8Array,
  build: () => LayersModel,
  loadWeights: (model: LayersModel, weights: TensorSource) => void,
): LayersModel {
  const file = parseSafetensors(safetensors, 'model.safetensors');
  const model = build();
  try {
    loadWeights(model, file.tensors);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}
