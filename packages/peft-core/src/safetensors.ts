import { AdapterFormatError } from './errors';
import { jsonNestingDepth } from './safe-json';

/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {…}}`,
 * then the tensor bytes. The reader trusts nothing: every length, offset, shape and dtype is checked
 * against the file before a byte is copied, and no allocation exceeds the file's own size.
 */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64' | 'I16' | 'I8' | 'U8' | 'BOOL';

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I32: 4,
  I64: 8,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface SafetensorsTensor {
  /** The dtype as stored in the file; `data` is always float32. */
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

export interface SafetensorsLimits {
  /** Largest header accepted, in bytes (the format's own reference implementation caps it at 100 MB). */
  maxHeaderBytes?: number;
  /** Largest number of tensors accepted. */
  maxTensors?: number;
  /** Deepest JSON nesting accepted in the header. */
  maxJsonDepth?: number;
}

const DEFAULT_LIMITS: Required<SafetensorsLimits> = {
  maxHeaderBytes: 100 * 1024 * 1024,
  maxTensors: 100_000,
  maxJsonDepth: 8,
};

export function parseSafetensors(
  bytes: Uint8Array,
  fileName = 'adapter_model.safetensors',
  limits: SafetensorsLimits = {},
): SafetensorsFile {
  const { maxHeaderBytes, maxTensors, maxJsonDepth } = { ...DEFAULT_LIMITS, ...limits };
  const fail = (problem: string): never => {
    throw new AdapterFormatError(fileName, problem);
  };
  if (!(bytes instanceof Uint8Array)) fail('expected the file contents as bytes');
  if (bytes.byteLength < 8) fail(`file is ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength64 = view.getBigUint64(0, true);
  if (headerLength64 > BigInt(bytes.byteLength - 8)) {
    fail(`header length ${headerLength64} exceeds the ${bytes.byteLength - 8} bytes that follow it`);
  }
  const headerLength = Number(headerLength64);
  if (headerLength > maxHeaderBytes)
    fail(`header length ${headerLength} exceeds the limit of ${maxHeaderBytes} bytes`);
  if (headerLength < 2) fail(`header length ${headerLength} is too short for a JSON object`);

  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    return fail('header is not valid UTF-8');
  }
  if (jsonNestingDepth(headerText) > maxJsonDepth)
    fail(`header JSON is nested deeper than ${maxJsonDepth} levels`);
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (error) {
    return fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    fail('header is not a JSON object');

  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;
  const entries = Object.keys(header as object);
  const tensorCount = entries.filter((name) => name !== '__metadata__').length;
  if (tensorCount > maxTensors)
    fail(`header declares ${tensorCount} tensors, more than the limit of ${maxTensors}`);

  const metadata: Record<string, string> = Object.create(null);
  const declared: Array<{
    name: string;
    dtype: SafetensorsDtype;
    shape: number[];
    begin: number;
    end: number;
  }> = [];
  for (const name of entries) {
    const entry = (header as Record<string, unknown>)[name];
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
        fail('__metadata__ is not an object');
      for (const key of Object.keys(entry as object)) {
        const value = (entry as Record<string, unknown>)[key];
        if (typeof value !== 'string') fail(`__metadata__.${key} is not a string`);
        metadata[key] = value as string;
      }
      continue;
    }
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry))
      fail(`tensor "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    // Own keys only: `"toString" in BYTES_PER_ELEMENT` is true through Object.prototype.
    if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(BYTES_PER_ELEMENT, dtype)) {
      fail(`tensor "${name}" has unsupported dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || shape.length > 8 || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      offsets.some((o) => !Number.isSafeInteger(o) || o < 0) ||
      offsets[0] > offsets[1]
    ) {
      fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as number[];
    if (end > dataLength)
      fail(`tensor "${name}" data [${begin}, ${end}) lies outside the ${dataLength} data bytes`);
    // Overflow-safe: the byte count is bounded by the file, so compare element counts step by step.
    const bytesPerElement = BYTES_PER_ELEMENT[dtype as SafetensorsDtype];
    // A zero dimension makes the tensor empty whatever the others are.
    let elements = (shape as number[]).includes(0) ? 0 : 1;
    for (const d of elements === 0 ? [] : (shape as number[])) {
      elements *= d;
      if (elements * bytesPerElement > dataLength) break;
    }
    if (elements * bytesPerElement !== end - begin) {
      fail(
        `tensor "${name}" declares shape [${(shape as number[]).join(', ')}] × ${dtype} ` +
          `but its data_offsets span ${end - begin} bytes`,
      );
    }
    declared.push({ name, dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], begin, end });
  }

  // The data must be covered exactly once: no overlaps, no holes.
  const ordered = [...declared].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of ordered) {
    if (t.begin < cursor) fail(`tensor "${t.name}" overlaps another tensor's data at byte ${t.begin}`);
    if (t.begin > cursor) fail(`data bytes [${cursor}, ${t.begin}) belong to no tensor`);
    cursor = t.end;
  }
  if (cursor !== dataLength) fail(`data bytes [${cursor}, ${dataLength}) belong to no tensor`);

  const tensors = new Map<string, SafetensorsTensor>();
  for (const t of declared) {
    tensors.set(t.name, {
      dtype: t.dtype,
      shape: t.shape,
      data: decodeToFloat32(bytes.subarray(dataStart + t.begin, dataStart + t.end), t.dtype),
    });
  }
  return { tensors, metadata };
}

function decodeToFloat32(raw: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const count = raw.byteLength / BYTES_PER_ELEMENT[dtype];
  const out = new Float32Array(count);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = float16ToFloat32(view.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const word = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < count; i++) {
        word.setUint32(0, view.getUint16(i * 2, true) << 16, true);
        out[i] = word.getFloat32(0, true);
      }
      break;
    }
    case 'I32':
      for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
      break;
    case 'I64':
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(i * 8, true));
      break;
    case 'I16':
      for (let i = 0; i < count; i++) out[i] = view.getInt16(i * 2, true);
      break;
    case 'I8':
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < count; i++) out[i] = view.getUint8(i);
      break;
  }
  return out;
}

function float16ToFloat32(half: number): number {
  const sign = half & 0x8000 ? -1 : 1;
  const exponent = (half >> 10) & 0x1f;
  const fraction = half & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Writes float32 tensors as safetensors, with PEFT's metadata `{"format": "pt"}` by default. */
export function serializeSafetensors(
  tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
  metadata: Record<string, string> = { format: 'pt' },
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const { shape, data } = tensors.get(name)!;
    const elements = shape.reduce((a, b) => a * b, 1);
    if (elements !== data.length) {
      throw new AdapterFormatError(
        'safetensors',
        `tensor "${name}" has shape [${shape}] but ${data.length} values`,
      );
    }
    header[name] = { dtype: 'F32', shape: [...shape], data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  // Pad the header with spaces so the data starts 8-byte aligned, as the reference writer does.
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    const withPadding = new Uint8Array(padded).fill(0x20);
    withPadding.set(headerBytes);
    headerBytes = withPadding;
  }
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let cursor = 8 + headerBytes.length;
  for (const name of names) {
    const { data } = tensors.get(name)!;
    for (let i = 0; i < data.length; i++) view.setFloat32(cursor + i * 4, data[i], true);
    cursor += data.byteLength;
  }
  return out;
}
