// Reads the interop fixtures that Hugging Face PEFT wrote (fixtures/<name>/: model.json, io.json,
// base_model.safetensors in PyTorch layout) and builds the equivalent tfjs model, its layers named as
// the torch modules. Node only (reads files); the browser runner never imports it from a test.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One entry of model.json `layers`. */
export interface TorchFixtureLayer {
  name: string;
  torch_type?: string;
  tfjs_type?: string;
  /** For weightless steps such as pooling. */
  type?: string;
  activation?: string;
  bias?: boolean;
  in_features?: number;
  out_features?: number;
  in_channels?: number;
  out_channels?: number;
  kernel_size?: number[];
  stride?: number[];
  padding?: number[];
  tfjs_padding?: string;
  dilation?: number[];
  groups?: number;
  num_embeddings?: number;
  embedding_dim?: number;
  padding_idx?: number | null;
}

export interface TorchFixtureAdapter {
  name: string;
  /** Folder of the adapter relative to the fixture ('.' for the root). */
  path: string;
  peft_type: string;
  [field: string]: unknown;
}

/** model.json: what the torch model is and how its weights map to tfjs. */
export interface TorchFixtureModel {
  fixture: string;
  kind: string;
  input: { shape: Array<number | null>; dtype?: string; layout?: string };
  layers: TorchFixtureLayer[];
  adapters?: TorchFixtureAdapter[];
  notes?: string[];
  versions?: Record<string, string>;
}

type Nested = number[] | number[][] | number[][][] | number[][][][];

/** io.json: inputs and the outputs torch/PEFT computed (eval mode, float32). */
export interface TorchFixtureIo {
  input_dtype?: string;
  inputs: Nested;
  /** Conv fixtures: the inputs in NHWC, tfjs's layout. */
  inputs_nhwc?: Nested;
  base_outputs: number[][];
  adapter_outputs?: number[][];
  merged_outputs?: number[][];
  disabled_adapter_outputs?: number[][];
  adapter_outputs_by_name?: Record<string, number[][]>;
  merged_outputs_by_name?: Record<string, number[][]>;
  tolerance?: { atol?: number };
  versions?: Record<string, string>;
}

export interface TorchTensor {
  dtype: string;
  shape: number[];
  data: Float32Array;
}

export interface TorchFixture {
  /** Absolute path of the fixture folder. */
  dir: string;
  model: TorchFixtureModel;
  io: TorchFixtureIo;
  /** base_model.safetensors, by torch state_dict key, as float32. */
  baseWeights: Map<string, TorchTensor>;
}

/**
 * A minimal, independent safetensors reader (F32/F64/I64/I32 → Float32Array) for the fixtures; kept
 * separate from @tfjs-peft/core's reader so the interop tests do not check that reader against itself.
 */
export function readSafetensorsFile(file: string): Map<string, TorchTensor> {
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const start = 8 + headerLength;
  const tensors = new Map<string, TorchTensor>();
  for (const [key, entry] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    const [begin, end] = entry.data_offsets;
    const raw = bytes.subarray(start + begin, start + end);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const count = entry.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(count);
    const width = { F32: 4, F64: 8, I64: 8, I32: 4 }[entry.dtype];
    if (width === undefined) throw new Error(`${file}: ${key} has dtype ${entry.dtype}, not supported here`);
    if (raw.byteLength !== count * width)
      throw new Error(`${file}: ${key} has ${raw.byteLength} bytes for shape [${entry.shape}]`);
    for (let i = 0; i < count; i++) {
      const o = i * width;
      data[i] =
        entry.dtype === 'F32'
          ? view.getFloat32(o, true)
          : entry.dtype === 'F64'
            ? view.getFloat64(o, true)
            : entry.dtype === 'I64'
              ? Number(view.getBigInt64(o, true))
              : view.getInt32(o, true);
    }
    tensors.set(key, { dtype: entry.dtype, shape: entry.shape, data });
  }
  return tensors;
}

/** Reads fixtures/<name>/ (model.json, io.json, base_model.safetensors). */
export function readTorchFixture(dir: string): TorchFixture {
  const abs = path.resolve(dir);
  const json = (name: string) => JSON.parse(fs.readFileSync(path.join(abs, name), 'utf8'));
  return {
    dir: abs,
    model: json('model.json') as TorchFixtureModel,
    io: json('io.json') as TorchFixtureIo,
    baseWeights: readSafetensorsFile(path.join(abs, 'base_model.safetensors')),
  };
}

/** Permutes a row-major array of `shape` by `perm` (as numpy's transpose). */
function permute(data: Float32Array, shape: number[], perm: number[]): Float32Array {
  const outShape = perm.map((p) => shape[p]);
  const inStrides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const out = new Float32Array(data.length);
  const index = new Array<number>(outShape.length).fill(0);
  for (let o = 0; o < out.length; o++) {
    let source = 0;
    for (let d = 0; d < outShape.length; d++) source += index[d] * inStrides[perm[d]];
    out[o] = data[source];
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++index[d] < outShape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

function weight(fixture: TorchFixture, key: string): TorchTensor {
  const w = fixture.baseWeights.get(key);
  if (!w) throw new Error(`${fixture.dir}/base_model.safetensors has no "${key}"`);
  return w;
}

/** The tfjs weights [kernel, bias?] of one torch layer, in tfjs layout. */
function tfjsWeights(
  fixture: TorchFixture,
  layer: TorchFixtureLayer,
): Array<{ shape: number[]; data: Float32Array }> {
  const w = weight(fixture, `${layer.name}.weight`);
  const out: Array<{ shape: number[]; data: Float32Array }> = [];
  switch (layer.torch_type) {
    case 'Linear': // [out, in] → [in, out]
      out.push({ shape: [w.shape[1], w.shape[0]], data: permute(w.data, w.shape, [1, 0]) });
      break;
    case 'Conv2d': // OIHW → HWIO
      out.push({
        shape: [w.shape[2], w.shape[3], w.shape[1], w.shape[0]],
        data: permute(w.data, w.shape, [2, 3, 1, 0]),
      });
      break;
    case 'Embedding': // [vocab, dim], same in both
      out.push({ shape: w.shape, data: w.data });
      break;
    default:
      throw new Error(`unsupported torch layer type ${layer.torch_type} (${layer.name})`);
  }
  if (layer.bias) {
    const b = weight(fixture, `${layer.name}.bias`);
    out.push({ shape: b.shape, data: b.data });
  }
  return out;
}

function tfjsLayer(layer: TorchFixtureLayer): tfl.layers.Layer {
  const activation = (layer.activation ?? 'linear') as 'relu' | 'linear';
  switch (layer.tfjs_type ?? layer.type) {
    case 'dense':
      return tfl.layers.dense({
        name: layer.name,
        units: layer.out_features!,
        useBias: !!layer.bias,
        activation,
      });
    case 'conv2d': {
      const k = layer.kernel_size!;
      const s = layer.stride ?? [1, 1];
      const d = layer.dilation ?? [1, 1];
      if ((layer.groups ?? 1) !== 1) throw new Error(`${layer.name}: grouped convolutions are not supported`);
      const padding =
        layer.tfjs_padding ?? ((layer.padding ?? [0, 0]).every((p) => p === 0) ? 'valid' : undefined);
      if (padding !== 'same' && padding !== 'valid')
        throw new Error(`${layer.name}: no tfjs padding for torch padding ${layer.padding}`);
      return tfl.layers.conv2d({
        name: layer.name,
        filters: layer.out_channels!,
        kernelSize: [k[0], k[1]],
        strides: [s[0], s[1]],
        dilationRate: [d[0], d[1]],
        padding,
        useBias: !!layer.bias,
        activation,
        dataFormat: 'channelsLast',
      });
    }
    case 'embedding':
      if (layer.padding_idx != null) throw new Error(`${layer.name}: padding_idx is not supported`);
      return tfl.layers.embedding({
        name: layer.name,
        inputDim: layer.num_embeddings!,
        outputDim: layer.embedding_dim!,
      });
    case 'global_average_pooling_2d':
      return tfl.layers.globalAveragePooling2d({ name: layer.name, dataFormat: 'channelsLast' });
    case 'mean': // mean over the sequence axis of [batch, seq, dim]
      return tfl.layers.globalAveragePooling1d({ name: layer.name });
    default:
      throw new Error(`unsupported layer ${layer.name} (${layer.tfjs_type ?? layer.type})`);
  }
}

/** The tfjs input shape (without batch) and dtype of a toy fixture. */
function inputSpec(model: TorchFixtureModel): { shape: number[]; dtype: 'float32' | 'int32' } {
  const shape = model.input.shape.slice(1) as number[];
  if (model.kind === 'conv') return { shape: [shape[1], shape[2], shape[0]], dtype: 'float32' }; // CHW → HWC
  if (model.kind === 'embedding') return { shape, dtype: 'int32' };
  return { shape, dtype: 'float32' };
}

/**
 * The tfjs functional model equivalent to a toy fixture's torch model (kinds mlp, conv, embedding):
 * layers named as the torch modules, weights from base_model.safetensors in tfjs layout.
 */
export function buildTfjsModelFromFixture(fixture: TorchFixture): tfl.LayersModel {
  const { model } = fixture;
  if (!['mlp', 'conv', 'embedding'].includes(model.kind)) {
    throw new Error(`${fixture.dir}: model kind ${model.kind} is not a toy model`);
  }
  const spec = inputSpec(model);
  const input = tfl.input({ shape: spec.shape, dtype: spec.dtype, name: 'x' });
  let x: tfl.SymbolicTensor = input;
  const withWeights: Array<[tfl.layers.Layer, TorchFixtureLayer]> = [];
  for (const description of model.layers) {
    const layer = tfjsLayer(description);
    x = layer.apply(x) as tfl.SymbolicTensor;
    if (description.torch_type) withWeights.push([layer, description]);
  }
  const built = tfl.model({ inputs: input, outputs: x, name: model.fixture });
  for (const [layer, description] of withWeights) {
    const values = tfjsWeights(fixture, description).map((w) => tf.tensor(w.data, w.shape, 'float32'));
    layer.setWeights(values);
    tf.dispose(values);
  }
  return built;
}

/** io.json inputs as a tfjs tensor (NHWC for conv, int32 token ids for embedding). */
export function fixtureInputs(fixture: TorchFixture): tf.Tensor {
  const { io, model } = fixture;
  const spec = inputSpec(model);
  const values = model.kind === 'conv' ? io.inputs_nhwc : io.inputs;
  if (!values) throw new Error(`${fixture.dir}/io.json has no inputs${model.kind === 'conv' ? '_nhwc' : ''}`);
  return tf.tensor(values as number[][], undefined, spec.dtype);
}
