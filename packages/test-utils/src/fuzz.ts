// Seeded, reproducible fuzzing helpers: a small PRNG, mutators for safetensors files and JSON
// documents (adapter_config.json), and the probes a fuzz case is judged by (prototype pollution,
// memory growth). Environment-agnostic: the Node-only probes (process.memoryUsage, a forced GC)
// report `undefined` in a browser.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';

/** mulberry32: a tiny 32-bit PRNG; the same seed gives the same sequence on every platform. */
export class FuzzRandom {
  private state: number;
  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** A derived generator, e.g. one per case, so a case can be replayed from (seed, index) alone. */
  fork(index: number): FuzzRandom {
    return new FuzzRandom(
      (Math.imul(this.seed ^ 0x9e3779b9, 2654435761) + Math.imul(index + 1, 0x85ebca6b)) >>> 0,
    );
  }
}

/** Env-selected fuzz size: `long` → longCount, a number → that many, otherwise ciCount. */
export function fuzzCaseCount(envValue: string | undefined, ciCount: number, longCount: number): number {
  if (envValue === 'long') return longCount;
  const n = Number(envValue);
  return Number.isSafeInteger(n) && n > 0 ? n : ciCount;
}

// ---------------------------------------------------------------------------------- safetensors

export interface SafetensorsParts {
  /** The header as parsed from a known-good file (tensor entries and __metadata__). */
  header: Record<string, any>;
  data: Uint8Array;
}

/** Splits a well-formed safetensors file (our own, not a hostile one) into header object and data. */
export function splitSafetensors(bytes: Uint8Array): SafetensorsParts {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  return { header, data: bytes.slice(8 + length) };
}

/** Writes a safetensors file from header JSON text (or bytes) and data, with an optional lying length. */
export function joinSafetensors(
  header: string | Uint8Array,
  data: Uint8Array,
  declaredLength?: bigint,
): Uint8Array {
  const headerBytes = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

const BYTES: Record<string, number> = {
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

/** Re-encodes float32 values as another safetensors dtype (consistently: a valid file). */
function encodeAs(values: Float32Array, dtype: string): Uint8Array {
  const out = new Uint8Array(values.length * BYTES[dtype]);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    switch (dtype) {
      case 'F32':
        view.setFloat32(i * 4, v, true);
        break;
      case 'F64':
        view.setFloat64(i * 8, v, true);
        break;
      case 'BF16': {
        const word = new DataView(new ArrayBuffer(4));
        word.setFloat32(0, v, true);
        view.setUint16(i * 2, word.getUint32(0, true) >>> 16, true);
        break;
      }
      case 'F16':
        view.setUint16(i * 2, float32ToFloat16Bits(v), true);
        break;
      case 'I32':
        view.setInt32(i * 4, Math.round(v * 100), true);
        break;
      case 'I64':
        view.setBigInt64(i * 8, BigInt(Math.round(v * 100)), true);
        break;
      case 'I16':
        view.setInt16(i * 2, Math.round(v * 100), true);
        break;
      case 'I8':
        view.setInt8(i, Math.max(-128, Math.min(127, Math.round(v * 100))));
        break;
      default:
        view.setUint8(i, Math.max(0, Math.min(255, Math.round(Math.abs(v) * 100))));
        break;
    }
  }
  return out;
}

function float32ToFloat16Bits(value: number): number {
  if (Number.isNaN(value)) return 0x7e00;
  const sign = value < 0 || Object.is(value, -0) ? 0x8000 : 0;
  const a = Math.abs(value);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -24) return sign;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24);
  const exponent = Math.floor(Math.log2(a));
  const fraction = Math.round((a / 2 ** exponent - 1) * 1024);
  return fraction === 1024 ? sign | ((exponent + 16) << 10) : sign | ((exponent + 15) << 10) | fraction;
}

function float32View(data: Uint8Array, begin: number, end: number): Float32Array {
  const copy = data.slice(begin, end);
  return new Float32Array(copy.buffer, 0, (end - begin) / 4);
}

/** Options a mutation may ask the loader to use (e.g. a lower header cap). */
export interface MutationLoadOptions {
  safetensorsLimits?: { maxHeaderBytes?: number; maxTensors?: number; maxJsonDepth?: number };
  maxFileBytes?: number;
}

export interface FileMutation {
  kind: string;
  bytes: Uint8Array;
  loadOptions?: MutationLoadOptions;
}

const HOSTILE_NUMBERS: unknown[] = [
  -1,
  0.5,
  2 ** 53,
  2 ** 64,
  1e308,
  -0,
  4294967296,
  2 ** 31 - 1,
  '1',
  null,
  true,
  [],
  {},
];
const HOSTILE_NAMES = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '__metadata__',
  '',
];

function deepNesting(depth: number, open = '[', close = ']'): string {
  return open.repeat(depth) + close.repeat(depth);
}

function tensorNames(header: Record<string, any>): string[] {
  return Object.keys(header).filter((k) => k !== '__metadata__');
}

/**
 * Mutations of a well-formed safetensors file. Each returns a hostile (or sometimes still valid)
 * file and its kind, for counting. All decisions come from `rng`, so (seed, case) replays exactly.
 */
export const SAFETENSORS_MUTATIONS: Record<string, (file: Uint8Array, rng: FuzzRandom) => FileMutation> = {
  truncate: (file, rng) => ({ kind: 'truncate', bytes: file.slice(0, rng.int(0, file.length - 1)) }),
  'trailing-bytes': (file, rng) => {
    const out = new Uint8Array(file.length + rng.int(1, 64));
    out.set(file);
    for (let i = file.length; i < out.length; i++) out[i] = rng.int(0, 255);
    return { kind: 'trailing-bytes', bytes: out };
  },
  'header-length-beyond-file': (file, rng) => {
    const out = file.slice();
    const values = [
      BigInt(file.length - 7),
      BigInt(file.length),
      2n ** 32n,
      2n ** 53n + 1n,
      2n ** 64n - 1n,
      BigInt(rng.int(file.length, 1e9)),
    ];
    new DataView(out.buffer).setBigUint64(0, rng.pick(values), true);
    return { kind: 'header-length-beyond-file', bytes: out };
  },
  'header-length-over-cap': (file, rng) => {
    const headerLength = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
    // The real header, read with a cap below its size (the cap check must come before decoding).
    return {
      kind: 'header-length-over-cap',
      bytes: file.slice(),
      loadOptions: { safetensorsLimits: { maxHeaderBytes: rng.int(0, headerLength - 1) } },
    };
  },
  'header-length-short': (file, rng) => {
    const out = file.slice();
    const view = new DataView(out.buffer);
    const real = Number(view.getBigUint64(0, true));
    view.setBigUint64(0, BigInt(rng.int(0, real - 1)), true);
    return { kind: 'header-length-short', bytes: out };
  },
  'bit-flip': (file, rng) => {
    const out = file.slice();
    for (let n = rng.int(1, 8); n > 0; n--) {
      const at = rng.int(0, out.length - 1);
      out[at] ^= 1 << rng.int(0, 7);
    }
    return { kind: 'bit-flip', bytes: out };
  },
  'header-byte-splice': (file, rng) => {
    const out = file.slice();
    const headerLength = Number(new DataView(out.buffer).getBigUint64(0, true));
    const chars = '{}[]",:0123456789-eE.\\ ';
    for (let n = rng.int(1, 4); n > 0; n--)
      out[8 + rng.int(0, headerLength - 1)] = chars.charCodeAt(rng.int(0, chars.length - 1));
    return { kind: 'header-byte-splice', bytes: out };
  },
  'offsets-overlap': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const names = tensorNames(header);
    const a = rng.pick(names);
    const b = rng.pick(names.filter((n) => n !== a));
    const [begin, end] = header[b].data_offsets;
    if (rng.chance(0.5)) header[a].data_offsets = [begin, end];
    else
      header[a].data_offsets = [
        Math.max(0, begin - 4),
        Math.max(0, begin - 4) + (header[a].data_offsets[1] - header[a].data_offsets[0]),
      ];
    return { kind: 'offsets-overlap', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'offsets-outside-data': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const name = rng.pick(tensorNames(header));
    const [begin, end] = header[name].data_offsets;
    header[name].data_offsets = rng.pick([
      [begin + data.length, end + data.length],
      [end, begin],
      [-4, end - begin - 4],
      [begin, 2 ** 53],
      [2 ** 64, 2 ** 64 + 4],
      [begin + 0.5, end + 0.5],
      [begin],
      [begin, end, end],
      'x',
      null,
      [String(begin), String(end)],
    ]);
    return { kind: 'offsets-outside-data', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'shape-dtype-mismatch': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const name = rng.pick(tensorNames(header));
    const shape: number[] = header[name].shape;
    const i = rng.int(0, shape.length - 1);
    header[name].shape = rng.pick<unknown>([
      shape.map((d, j) => (j === i ? d + 1 : d)),
      shape.map((d, j) => (j === i ? d * 2 : d)),
      [...shape].reverse(),
      [shape.reduce((a, b) => a * b, 1)],
      [...shape, 1],
      shape.map((d, j) => (j === i ? -d : d)),
      shape.map((d, j) => (j === i ? d + 0.5 : d)),
      [1, 1, 1, 1, 1, 1, 1, 1, 1],
      'big',
      null,
    ]);
    return { kind: 'shape-dtype-mismatch', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'huge-declared-shape': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const name = rng.pick(tensorNames(header));
    const [begin, end] = header[name].data_offsets;
    header[name].shape = rng.pick([
      [2 ** 31, 2 ** 31],
      [2 ** 53 - 1],
      [2 ** 26, 2 ** 26, 2 ** 26, 2 ** 26],
      [65536, 65536, 65536],
      [(end - begin) / 4, 2 ** 40],
      [2 ** 40, 2 ** 40, 0],
    ]);
    return { kind: 'huge-declared-shape', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'unknown-dtype': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    header[rng.pick(tensorNames(header))].dtype = rng.pick<unknown>([
      'F8',
      'F8_E4M3',
      'Q4',
      'C64',
      'f32',
      '',
      42,
      null,
      ['F32'],
      ...HOSTILE_NAMES,
    ]);
    return { kind: 'unknown-dtype', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'dtype-swap': (file, rng) => {
    // The dtype changes, the bytes do not: sizes mismatch, or (F32↔I32) reinterpreted values.
    const { header, data } = splitSafetensors(file);
    header[rng.pick(tensorNames(header))].dtype = rng.pick(Object.keys(BYTES));
    return { kind: 'dtype-swap', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'dtype-reencode': (file, rng) => {
    // A consistent file in another dtype: must load (values rounded) or fail with a typed error.
    const { header, data } = splitSafetensors(file);
    const names = tensorNames(header).sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
    const target = rng.pick(names);
    const dtype = rng.pick(['F16', 'BF16', 'F64', 'I8', 'U8', 'BOOL', 'I16', 'I32', 'I64']);
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const name of names) {
      const [begin, end] = header[name].data_offsets;
      const bytes = name === target ? encodeAs(float32View(data, begin, end), dtype) : data.slice(begin, end);
      if (name === target) header[name].dtype = dtype;
      header[name].data_offsets = [offset, offset + bytes.length];
      offset += bytes.length;
      chunks.push(bytes);
    }
    const out = new Uint8Array(offset);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return { kind: 'dtype-reencode', bytes: joinSafetensors(JSON.stringify(header), out) };
  },
  'non-finite-values': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const name = rng.pick(tensorNames(header));
    const [begin, end] = header[name].data_offsets;
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let n = rng.int(1, 3); n > 0; n--)
      view.setFloat32(
        begin + 4 * rng.int(0, (end - begin) / 4 - 1),
        rng.pick([NaN, Infinity, -Infinity]),
        true,
      );
    return { kind: 'non-finite-values', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'header-non-utf8': (file, rng) => {
    const out = file.slice();
    const headerLength = Number(new DataView(out.buffer).getBigUint64(0, true));
    const at = 8 + rng.int(0, headerLength - 1);
    out[at] = rng.pick([0xff, 0xc0, 0x80, 0xed, 0xf8]);
    return { kind: 'header-non-utf8', bytes: out };
  },
  'header-deep-nesting': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const depth = rng.pick([9, 64, 5000, 200_000]);
    const text = JSON.stringify({ ...header, __metadata__: { format: 'pt' } }).replace(
      '"pt"',
      deepNesting(depth, rng.chance(0.5) ? '[' : '{"a":', rng.chance(0.5) ? ']' : '}'),
    );
    return { kind: 'header-deep-nesting', bytes: joinSafetensors(text, data) };
  },
  'header-prototype-keys': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const names = tensorNames(header);
    const key = rng.pick(['__proto__', 'constructor', 'prototype']);
    const payload = `{"polluted":"yes","dtype":"F32","shape":[0],"data_offsets":[0,0]}`;
    let text = JSON.stringify(header);
    switch (rng.int(0, 3)) {
      case 0: // as a tensor name
        text = `{"${key}":${payload},` + text.slice(1);
        break;
      case 1: // inside __metadata__
        text = text.replace(
          '"__metadata__":{',
          `"__metadata__":{"${key}":${rng.chance(0.5) ? '"x"' : '{"polluted":"yes"}'},`,
        );
        break;
      case 2: // inside a tensor entry
        text = text.replace(`"${names[0]}":{`, `"${names[0]}":{"${key}":{"polluted":"yes"},`);
        break;
      default: // a tensor renamed to it
        text = text.replace(`"${rng.pick(names)}":`, `"${key}":`);
    }
    return { kind: 'header-prototype-keys', bytes: joinSafetensors(text, data) };
  },
  'tensor-keys': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const names = tensorNames(header);
    const name = rng.pick(names);
    const entry = header[name];
    delete header[name];
    const choice = rng.int(0, 3);
    if (choice === 0) {
      // Dropped: its bytes belong to no tensor.
    } else if (choice === 1) header[name.replace('base_model.model.', '')] = entry;
    else if (choice === 2)
      header[name.replace(/lora_[AB]/, (m) => (m === 'lora_A' ? 'lora_B' : 'lora_A')) + 'x'] = entry;
    else header[name.replace(/\.[^.]+\.lora/, '.nonexistent_layer.lora')] = entry;
    return { kind: 'tensor-keys', bytes: joinSafetensors(JSON.stringify(header), data) };
  },
  'header-wrong-types': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const text = rng.pick([
      '[]',
      'null',
      '"x"',
      '42',
      JSON.stringify({
        ...header,
        __metadata__: rng.pick<unknown>([[], 'pt', 1, { format: 1 }, { format: null }]),
      }),
      JSON.stringify({
        ...header,
        [rng.pick(tensorNames(header))]: rng.pick<unknown>([null, [], 'x', 1, true]),
      }),
      JSON.stringify({
        ...header,
        [rng.pick(tensorNames(header))]: {
          ...header[rng.pick(tensorNames(header))],
          data_offsets: rng.pick(HOSTILE_NUMBERS),
        },
      }),
    ]);
    return { kind: 'header-wrong-types', bytes: joinSafetensors(text, data) };
  },
  'too-many-tensors': (file, rng) => {
    const { header, data } = splitSafetensors(file);
    const extra = rng.pick([10, 1000]);
    const text =
      JSON.stringify(header).slice(0, -1) +
      Array.from(
        { length: extra },
        (_, i) => `,"z${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`,
      ).join('') +
      '}';
    return {
      kind: 'too-many-tensors',
      bytes: joinSafetensors(text, data),
      loadOptions: { safetensorsLimits: { maxTensors: rng.pick([4, extra]) } },
    };
  },
  'file-too-large': (file, rng) => ({
    kind: 'file-too-large',
    bytes: file.slice(),
    loadOptions: { maxFileBytes: rng.int(0, file.length - 1) },
  }),
};

// ---------------------------------------------------------------------------------- JSON config

/** Values of every JSON type (and a few hostile ones) to put where a field of another type belongs. */
export const WRONG_TYPE_VALUES: string[] = [
  'null',
  'true',
  'false',
  '0',
  '-1',
  '1.5',
  '-0',
  '1e308',
  '-1e308',
  '65536',
  '65537',
  '2147483648',
  '9007199254740993',
  '""',
  '"x"',
  '"__proto__"',
  '"constructor"',
  '"NaN"',
  '"Infinity"',
  '[]',
  '[1]',
  '[null]',
  '["a", 2]',
  '{}',
  '{"a":1}',
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '"' + 'x'.repeat(10000) + '"',
];

/**
 * Mutations of a JSON object file (adapter_config.json). Field-level mutations edit the text, so
 * keys such as `__proto__` reach the parser exactly as a hostile file would carry them.
 */
export const JSON_MUTATIONS: Record<string, (file: Uint8Array, rng: FuzzRandom) => FileMutation> = {
  'config-field-wrong-type': (file, rng) => {
    const json = JSON.parse(new TextDecoder().decode(file));
    const field = rng.pick(Object.keys(json));
    return { kind: 'config-field-wrong-type', bytes: withField(json, field, rng.pick(WRONG_TYPE_VALUES)) };
  },
  'config-field-missing': (file, rng) => {
    const json = JSON.parse(new TextDecoder().decode(file));
    delete json[rng.pick(Object.keys(json))];
    return { kind: 'config-field-missing', bytes: new TextEncoder().encode(JSON.stringify(json)) };
  },
  'config-unknown-field': (file, rng) => {
    const json = JSON.parse(new TextDecoder().decode(file));
    return {
      kind: 'config-unknown-field',
      bytes: withField(
        json,
        rng.pick(['use_qalora', 'megatron_config', 'x', 'toString', '']),
        rng.pick(WRONG_TYPE_VALUES),
      ),
    };
  },
  'config-prototype-keys': (file, rng) => {
    const json = JSON.parse(new TextDecoder().decode(file));
    const key = rng.pick(['__proto__', 'constructor', 'prototype']);
    const value = rng.pick(['{"polluted":"yes"}', '{"prototype":{"polluted":"yes"}}', '"yes"', '1', 'null']);
    const text = JSON.stringify(json);
    const where = rng.int(0, 3);
    let out: string;
    if (where === 0) out = `{"${key}":${value},` + text.slice(1);
    else if (where === 1)
      out = withFieldText(
        json,
        rng.pick(['rank_pattern', 'alpha_pattern']),
        `{"${key}":${rng.pick(['4', '{"polluted":"yes"}'])}}`,
      );
    else if (where === 2) out = withFieldText(json, 'target_modules', `["${key}"]`);
    else
      out = withFieldText(json, 'peft_type', `"${rng.pick([key, 'toString', 'hasOwnProperty', 'valueOf'])}"`);
    return { kind: 'config-prototype-keys', bytes: new TextEncoder().encode(out) };
  },
  'config-deep-nesting': (file, rng) => {
    const json = JSON.parse(new TextDecoder().decode(file));
    const depth = rng.pick([17, 100, 10000, 500_000]);
    return {
      kind: 'config-deep-nesting',
      bytes: withField(json, rng.pick(Object.keys(json)), deepNesting(depth)),
    };
  },
  'config-non-utf8': (file, rng) => {
    const out = file.slice();
    out[rng.int(0, out.length - 1)] = rng.pick([0xff, 0xfe, 0xc3, 0x80, 0xed]);
    return { kind: 'config-non-utf8', bytes: out };
  },
  'config-truncate': (file, rng) => ({
    kind: 'config-truncate',
    bytes: file.slice(0, rng.int(0, file.length - 1)),
  }),
  'config-not-object': (_file, rng) => ({
    kind: 'config-not-object',
    bytes: new TextEncoder().encode(
      rng.pick(['', '[]', 'null', '"LORA"', '1', 'true', '{', '{"peft_type":"LORA"', '\uFEFF{}', '{}']),
    ),
  }),
  'config-bit-flip': (file, rng) => {
    const out = file.slice();
    for (let n = rng.int(1, 4); n > 0; n--) out[rng.int(0, out.length - 1)] ^= 1 << rng.int(0, 7);
    return { kind: 'config-bit-flip', bytes: out };
  },
  'config-boundary-values': (file, rng) => {
    const json = JSON.parse(new TextDecoder().decode(file));
    const field = rng.pick([
      'r',
      'lora_alpha',
      'lora_dropout',
      'layers_to_transform',
      'rank_pattern',
      'target_modules',
    ]);
    const values: Record<string, string[]> = {
      r: ['0', '1', '-1', '2', '4.0', '1e-300', '65536', '65537', '1e9'],
      lora_alpha: ['0', '-8', '1e-320', '1e308', '8'],
      lora_dropout: ['1', '0.999999', '-0.1', '0'],
      layers_to_transform: ['[]', '[0]', '[-1]', '[1.5]', '[4294967296]', '0'],
      rank_pattern: ['{"fc1": 0}', '{"fc1": 1e9}', '{"(": 2}', '{"fc1": "2"}', '{"": 2}', '{"(a+)+$": 2}'],
      target_modules: [
        '[]',
        '[""]',
        '".*"',
        '"(a+)+$"',
        '["fc1","fc1"]',
        '"all-linear"',
        `[${Array(1000).fill('"fc1"').join(',')}]`,
      ],
    };
    return { kind: 'config-boundary-values', bytes: withField(json, field, rng.pick(values[field])) };
  },
};

function withFieldText(json: Record<string, unknown>, field: string, valueText: string): string {
  const marker = '"__FUZZ_VALUE__"';
  return JSON.stringify({ ...json, [field]: '__FUZZ_VALUE__' }).replace(marker, valueText);
}

function withField(json: Record<string, unknown>, field: string, valueText: string): Uint8Array {
  return new TextEncoder().encode(withFieldText(json, field, valueText));
}

// ---------------------------------------------------------------------------------- probes

const PROTOTYPES: Array<[string, object]> = [
  ['Object.prototype', Object.prototype],
  ['Array.prototype', Array.prototype],
  ['Function.prototype', Function.prototype],
  ['String.prototype', String.prototype],
  ['Number.prototype', Number.prototype],
  ['Map.prototype', Map.prototype],
];

/** The own property names of the built-in prototypes, to compare before and after a case. */
export function prototypeFingerprint(): string {
  return PROTOTYPES.map(
    ([name, proto]) => `${name}:${Reflect.ownKeys(proto).map(String).sort().join(',')}`,
  ).join('\n');
}

/** Throws if a built-in prototype gained, lost or changed a property, or `{}` sees an inherited `polluted`. */
export function expectPrototypesClean(before: string): void {
  const after = prototypeFingerprint();
  if (after !== before) throw new Error(`a built-in prototype was modified:\n${after}`);
  if (
    ({} as Record<string, unknown>).polluted !== undefined ||
    ([] as unknown as Record<string, unknown>).polluted !== undefined
  ) {
    throw new Error('Object.prototype.polluted is set');
  }
}

type GcFunction = (options?: { type?: 'minor' | 'major' }) => void;
let gcFunction: GcFunction | null | undefined;

/**
 * A forced garbage collection where the platform allows one (Node), else undefined. `'minor'`
 * (a scavenge, ~1 ms) is enough to free the ArrayBuffers a fuzz case dropped; `'major'` is ~100 ms.
 */
export function forcedGc(): ((kind?: 'minor' | 'major') => void) | undefined {
  if (gcFunction === undefined) {
    gcFunction = null;
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === 'function') gcFunction = exposed as GcFunction;
    else if (typeof v8.setFlagsFromString === 'function' && typeof vm.runInNewContext === 'function') {
      try {
        v8.setFlagsFromString('--expose-gc');
        const fn = vm.runInNewContext('gc');
        if (typeof fn === 'function') gcFunction = fn as GcFunction;
      } catch {
        gcFunction = null;
      }
    }
  }
  const gc = gcFunction;
  return gc ? (kind = 'major') => gc({ type: kind }) : undefined;
}

/** Bytes held by ArrayBuffers (Node's process.memoryUsage().arrayBuffers), or undefined elsewhere. */
export function arrayBufferBytes(): number | undefined {
  const usage = (globalThis as { process?: { memoryUsage?: () => { arrayBuffers?: number } } }).process
    ?.memoryUsage;
  return typeof usage === 'function' ? usage().arrayBuffers : undefined;
}
