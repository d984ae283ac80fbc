import { AdapterFormatError } from './errors';
import { parseSafetensors, serializeSafetensors } from './safetensors';

/** Builds a safetensors file from a header (object or raw JSON text) and raw data bytes. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const headerBytes = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}

function rawFileWithHeaderBytes(headerBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + headerBytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** Parses and returns the AdapterFormatError's message; fails the test if anything else happens. */
function rejection(bytes: Uint8Array, limits = {}): string {
  try {
    parseSafetensors(bytes, 'adapter_model.safetensors', limits);
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterFormatError);
    expect((error as AdapterFormatError).file).toBe('adapter_model.safetensors');
    return (error as Error).message;
  }
  throw new Error('expected an AdapterFormatError, but the file parsed');
}

const one = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };

describe('serializeSafetensors / parseSafetensors', () => {
  it('round-trips tensors, shapes, values and metadata', () => {
    const tensors = new Map([
      [
        'base_model.model.fc1.lora_A.weight',
        { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 0, -0, 1e-30]) },
      ],
      [
        'base_model.model.fc1.lora_B.weight',
        { shape: [3, 2], data: Float32Array.from([NaN, Infinity, -Infinity, 7, 8, 9]) },
      ],
      ['scalar', { shape: [], data: Float32Array.from([42]) }],
      ['empty', { shape: [0, 4], data: new Float32Array(0) }],
    ]);
    const bytes = serializeSafetensors(tensors);
    // The data starts 8-byte aligned, as the reference writer does it.
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    const file = parseSafetensors(bytes);
    expect(file.metadata).toEqual({ format: 'pt' });
    expect([...file.tensors.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, { shape, data }] of tensors) {
      const parsed = file.tensors.get(name)!;
      expect(parsed.dtype).toBe('F32');
      expect(parsed.shape).toEqual(shape);
      // Bit-exact, NaN and -0 included.
      expect(new Uint8Array(parsed.data.buffer, parsed.data.byteOffset, parsed.data.byteLength)).toEqual(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
    }
  });

  it('parses a file given as a view into a larger buffer', () => {
    const bytes = serializeSafetensors(new Map([['w', { shape: [2], data: Float32Array.from([1, 2]) }]]));
    const bigger = new Uint8Array(bytes.length + 13);
    bigger.set(bytes, 5);
    const file = parseSafetensors(bigger.subarray(5, 5 + bytes.length));
    expect([...file.tensors.get('w')!.data]).toEqual([1, 2]);
  });

  it('writes custom metadata and refuses a tensor whose shape does not fit its values', () => {
    const bytes = serializeSafetensors(new Map(), { format: 'pt', note: 'x' });
    expect(parseSafetensors(bytes).metadata).toEqual({ format: 'pt', note: 'x' });
    expect(() =>
      serializeSafetensors(new Map([['bad', { shape: [2, 2], data: new Float32Array(3) }]])),
    ).toThrow(/"bad".*\[2,2\].*3 values/);
  });

  it('decodes F16, BF16, F64, I64 and the integer dtypes exactly', () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x7c00, 0xfc00, 0x0001, 0x03ff, 0x7bff, 0x3555, 0x8000]);
    const bf16 = new Uint16Array([0x3f80, 0xc040, 0x7f80, 0xff80, 0x0001, 0x4049]);
    const f64 = new Float64Array([1 / 3, -1e300, 2 ** -1074]);
    const i64 = new BigInt64Array([-5n, 2n ** 40n, -(2n ** 53n)]);
    const i32 = new Int32Array([-2147483648, 7]);
    const i16 = new Int16Array([-32768, 12]);
    const i8 = new Int8Array([-128, 3]);
    const u8 = new Uint8Array([255, 0]);
    const bool = new Uint8Array([1, 0]);
    const nanHalf = new Uint16Array([0x7e00]);
    const parts: Array<[string, string, ArrayBufferView, number]> = [
      ['f16', 'F16', f16, f16.length],
      ['bf16', 'BF16', bf16, bf16.length],
      ['f64', 'F64', f64, f64.length],
      ['i64', 'I64', i64, i64.length],
      ['i32', 'I32', i32, i32.length],
      ['i16', 'I16', i16, i16.length],
      ['i8', 'I8', i8, i8.length],
      ['u8', 'U8', u8, u8.length],
      ['bool', 'BOOL', bool, bool.length],
      ['nanHalf', 'F16', nanHalf, 1],
    ];
    const header: Record<string, unknown> = {};
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const [name, dtype, view, count] of parts) {
      header[name] = { dtype, shape: [count], data_offsets: [offset, offset + view.byteLength] };
      chunks.push(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      offset += view.byteLength;
    }
    const data = new Uint8Array(offset);
    let at = 0;
    for (const c of chunks) {
      data.set(c, at);
      at += c.length;
    }
    const { tensors } = parseSafetensors(rawFile(header, data));
    const values = (name: string) => [...tensors.get(name)!.data];
    expect(values('f16')).toEqual([
      1,
      -2,
      Infinity,
      -Infinity,
      2 ** -24,
      1023 * 2 ** -24,
      65504,
      Math.fround(0.333251953125),
      -0,
    ]);
    expect(Object.is(values('f16')[8], -0)).toBe(true);
    expect(values('bf16')).toEqual([1, -3, Infinity, -Infinity, Math.fround(2 ** -133), 3.140625]);
    expect(values('f64')).toEqual([Math.fround(1 / 3), -Infinity, 0]);
    expect(values('i64')).toEqual([-5, 2 ** 40, -(2 ** 53)]);
    expect(values('i32')).toEqual([-2147483648, 7]);
    expect(values('i16')).toEqual([-32768, 12]);
    expect(values('i8')).toEqual([-128, 3]);
    expect(values('u8')).toEqual([255, 0]);
    expect(values('bool')).toEqual([1, 0]);
    expect(Number.isNaN(values('nanHalf')[0])).toBe(true);
    expect(tensors.get('bf16')!.dtype).toBe('BF16');
  });

  it('accepts an empty header and a header padded with spaces', () => {
    expect(parseSafetensors(rawFile('{}')).tensors.size).toBe(0);
    expect(
      parseSafetensors(rawFile('{"w":' + JSON.stringify(one) + '}     ', f32Bytes([5]))).tensors.get('w')!
        .data[0],
    ).toBe(5);
  });

  it('accepts a zero-element tensor whose other dimensions are huge', () => {
    const file = parseSafetensors(
      rawFile(
        {
          z: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 0], data_offsets: [0, 0] },
          w: { ...one, data_offsets: [0, 4] },
        },
        f32Bytes([1]),
      ),
    );
    expect(file.tensors.get('z')!.data.length).toBe(0);
  });
});

describe('parseSafetensors rejects malformed files with AdapterFormatError naming the fault', () => {
  it('a file shorter than the 8-byte length', () => {
    expect(rejection(new Uint8Array(5))).toMatch(/5 bytes, shorter than the 8-byte header length/);
  });

  it('a truncated file', () => {
    const bytes = serializeSafetensors(new Map([['w', { shape: [4], data: new Float32Array(4) }]]));
    expect(rejection(bytes.subarray(0, bytes.length - 3))).toMatch(/"w".*outside the 13 data bytes/);
    expect(rejection(bytes.subarray(0, 20))).toMatch(/header length \d+ exceeds the 12 bytes that follow it/);
  });

  it('a header length larger than the file, even near 2^64', () => {
    expect(rejection(rawFile('{}', undefined, 3n))).toMatch(/header length 3 exceeds the 2 bytes/);
    expect(rejection(rawFile('{}', undefined, 2n ** 64n - 1n))).toMatch(
      /header length 18446744073709551615 exceeds/,
    );
  });

  it('a header length over the cap', () => {
    const bytes = rawFile({ w: one }, f32Bytes([1]));
    expect(rejection(bytes, { maxHeaderBytes: 16 })).toMatch(/exceeds the limit of 16 bytes/);
  });

  it('a header too short for an object', () => {
    expect(rejection(rawFile('{'))).toMatch(/header length 1 is too short/);
  });

  it('a header that is not UTF-8', () => {
    expect(rejection(rawFileWithHeaderBytes(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])))).toMatch(
      /not valid UTF-8/,
    );
    // An overlong encoding of '"' and a lone surrogate are not UTF-8 either.
    expect(rejection(rawFileWithHeaderBytes(new Uint8Array([0x7b, 0xc0, 0xa2, 0x7d])))).toMatch(
      /not valid UTF-8/,
    );
    expect(rejection(rawFileWithHeaderBytes(new Uint8Array([0x7b, 0xed, 0xa0, 0x80, 0x7d])))).toMatch(
      /not valid UTF-8/,
    );
  });

  it('a header that is not JSON, or not a JSON object', () => {
    expect(rejection(rawFile('{"w": '))).toMatch(/not valid JSON/);
    expect(rejection(rawFile('[1, 2]'))).toMatch(/header is not a JSON object/);
    expect(rejection(rawFile('null'))).toMatch(/header is not a JSON object/);
    expect(rejection(rawFile('42'))).toMatch(/header is not a JSON object/);
    expect(rejection(rawFile('"{}"'))).toMatch(/header is not a JSON object/);
  });

  it('deep nesting, before JSON.parse sees it', () => {
    const deep = '{"a":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}';
    expect(rejection(rawFile(deep))).toMatch(/nested deeper than 8 levels/);
    // Brackets inside strings do not count.
    const quoted = { __metadata__: { note: '[[[[[[[[[[[[{{{{{{{{{{\\"' }, w: one };
    expect(parseSafetensors(rawFile(quoted, f32Bytes([1]))).metadata.note).toBe('[[[[[[[[[[[[{{{{{{{{{{\\"');
  });

  it('bad __metadata__', () => {
    expect(rejection(rawFile({ __metadata__: [1] }))).toMatch(/__metadata__ is not an object/);
    expect(rejection(rawFile({ __metadata__: { format: 1 } }))).toMatch(
      /__metadata__\.format is not a string/,
    );
  });

  it('a tensor entry that is not an object', () => {
    expect(rejection(rawFile({ w: [1] }))).toMatch(/tensor "w" is not an object/);
    expect(rejection(rawFile({ w: null }))).toMatch(/tensor "w" is not an object/);
  });

  it('an unknown dtype, including names inherited from Object.prototype', () => {
    for (const dtype of ['F8', 'f32', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 7, null]) {
      const message = rejection(rawFile({ w: { ...one, dtype } }, f32Bytes([1])));
      expect(message).toMatch(/tensor "w" has unsupported dtype/);
      expect(message).toContain(JSON.stringify(dtype));
    }
    expect(rejection(rawFile({ w: { shape: [1], data_offsets: [0, 4] } }, f32Bytes([1])))).toMatch(
      /tensor "w" has unsupported dtype undefined/,
    );
  });

  it('a bad shape', () => {
    for (const shape of [[-1], [1.5], ['1'], 3, null, [2 ** 53], new Array(9).fill(1)]) {
      expect(rejection(rawFile({ w: { ...one, shape } }, f32Bytes([1])))).toMatch(
        /tensor "w" has an invalid shape/,
      );
    }
  });

  it('bad data_offsets', () => {
    for (const offsets of [[4, 0], [0], [0, 4, 8], [-4, 0], [0, 4.5], ['0', '4'], null]) {
      expect(rejection(rawFile({ w: { ...one, data_offsets: offsets } }, f32Bytes([1])))).toMatch(
        /tensor "w" has invalid data_offsets/,
      );
    }
  });

  it('offsets outside the data', () => {
    expect(rejection(rawFile({ w: { ...one, data_offsets: [4, 8] } }, f32Bytes([1])))).toMatch(
      /tensor "w" data \[4, 8\) lies outside the 4 data bytes/,
    );
    expect(
      rejection(
        rawFile({ w: { dtype: 'F32', shape: [2 ** 50], data_offsets: [0, 2 ** 52] } }, f32Bytes([1])),
      ),
    ).toMatch(/tensor "w" data .* lies outside/);
  });

  it('a shape × dtype that does not match the span, without overflowing', () => {
    expect(rejection(rawFile({ w: { ...one, shape: [2] } }, f32Bytes([1])))).toMatch(
      /tensor "w" declares shape \[2\] × F32 but its data_offsets span 4 bytes/,
    );
    expect(rejection(rawFile({ w: { ...one, dtype: 'F16' } }, f32Bytes([1])))).toMatch(
      /tensor "w" declares shape \[1\] × F16/,
    );
    // 2^32 · 2^32 · 4 bytes would wrap a 64-bit count to 0; we must not accept it as an empty span.
    expect(
      rejection(rawFile({ w: { dtype: 'F32', shape: [2 ** 32, 2 ** 32, 2 ** 32], data_offsets: [0, 0] } })),
    ).toMatch(/tensor "w" declares shape/);
  });

  it('overlapping tensors', () => {
    const header = { a: { ...one, data_offsets: [0, 8], shape: [2] }, b: { ...one, data_offsets: [4, 8] } };
    expect(rejection(rawFile(header, f32Bytes([1, 2])))).toMatch(
      /tensor "b" overlaps another tensor's data at byte 4/,
    );
    const same = { a: one, b: one };
    expect(rejection(rawFile(same, f32Bytes([1])))).toMatch(/overlaps another tensor's data at byte 0/);
  });

  it('holes between or after tensors', () => {
    expect(rejection(rawFile({ a: one, b: { ...one, data_offsets: [8, 12] } }, f32Bytes([1, 2, 3])))).toMatch(
      /data bytes \[4, 8\) belong to no tensor/,
    );
    expect(rejection(rawFile({ a: one }, f32Bytes([1, 2])))).toMatch(
      /data bytes \[4, 8\) belong to no tensor/,
    );
    expect(rejection(rawFile({ a: { ...one, data_offsets: [4, 8] } }, f32Bytes([1, 2])))).toMatch(
      /data bytes \[0, 4\) belong to no tensor/,
    );
  });

  it('too many tensors', () => {
    expect(
      rejection(rawFile({ a: one, b: { ...one, data_offsets: [4, 8] } }, f32Bytes([1, 2])), {
        maxTensors: 1,
      }),
    ).toMatch(/header declares 2 tensors, more than the limit of 1/);
    // __metadata__ is not a tensor: it does not count against the limit.
    expect(
      parseSafetensors(rawFile({ __metadata__: { format: 'pt' }, a: one }, f32Bytes([1])), 'x', {
        maxTensors: 1,
      }).tensors.size,
    ).toBe(1);
  });
});

describe('parseSafetensors and hostile keys', () => {
  afterEach(() => {
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it('__proto__ and constructor as tensor names are plain names; nothing is polluted', () => {
    const header =
      '{"__metadata__":{"__proto__":"x","constructor":"y"},' +
      '"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},' +
      '"constructor":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    const file = parseSafetensors(rawFile(header, f32Bytes([1, 2])));
    expect([...file.tensors.keys()].sort()).toEqual(['__proto__', 'constructor']);
    expect(file.tensors.get('__proto__')!.data[0]).toBe(1);
    expect(Object.getOwnPropertyNames(file.metadata).sort()).toEqual(['__proto__', 'constructor']);
    expect(file.metadata.constructor).toBe('y');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a __proto__ entry carrying fields pollutes nothing and is rejected as a tensor', () => {
    const header = '{"__proto__":{"polluted":1,"dtype":"F32","shape":[1]}}';
    expect(rejection(rawFile(header, f32Bytes([1])))).toMatch(/tensor "__proto__" has invalid data_offsets/);
    const nested = '{"w":{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"polluted":1}}}';
    expect(rejection(rawFile(nested, f32Bytes([1])))).toMatch(/tensor "w" has unsupported dtype/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

/** mulberry32: a small seeded PRNG, so a failing mutation can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('parseSafetensors under random mutations', () => {
  it('2,000 mutated files each parse or fail with AdapterFormatError, quickly', () => {
    const valid = serializeSafetensors(
      new Map([
        [
          'base_model.model.fc1.lora_A.weight',
          { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
        ],
        [
          'base_model.model.fc1.lora_B.weight',
          { shape: [4, 2], data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) },
        ],
      ]),
    );
    const headerLength = Number(new DataView(valid.buffer).getBigUint64(0, true));
    const random = prng(20240611);
    const int = (n: number) => Math.floor(random() * n);
    const started = Date.now();
    let parsed = 0;
    let rejected = 0;
    for (let i = 0; i < 2000; i++) {
      let bytes: Uint8Array = valid.slice();
      const kind = i % 5;
      if (kind === 0) {
        // Flip 1–4 random bits anywhere.
        for (let k = 1 + int(4); k > 0; k--) bytes[int(bytes.length)] ^= 1 << int(8);
      } else if (kind === 1) {
        // Replace 1–3 header bytes with random printable or structural characters.
        const alphabet = '{}[]",:0123456789-eE.tfnul \\';
        for (let k = 1 + int(3); k > 0; k--)
          bytes[8 + int(headerLength)] = alphabet.charCodeAt(int(alphabet.length));
      } else if (kind === 2) {
        bytes = bytes.slice(0, int(bytes.length));
      } else if (kind === 3) {
        const choices = [
          0n,
          1n,
          2n,
          BigInt(headerLength - 1),
          BigInt(headerLength + 1),
          BigInt(bytes.length),
          2n ** 63n,
          2n ** 64n - 1n,
          BigInt(int(2 ** 31)),
        ];
        new DataView(bytes.buffer).setBigUint64(0, choices[int(choices.length)], true);
      } else {
        // Splice a random number into the header where a digit was.
        const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength));
        const digits = [...text].map((c, j) => (/[0-9]/.test(c) ? j : -1)).filter((j) => j >= 0);
        const at = digits[int(digits.length)];
        const replacement = String([0, 1, 4, 7, 8, 24, 2 ** 31, 2 ** 53, -1, 1e308][int(10)]);
        const mutated = text.slice(0, at) + replacement + text.slice(at + 1);
        bytes = rawFile(mutated, valid.subarray(8 + headerLength));
      }
      try {
        parseSafetensors(bytes);
        parsed++;
      } catch (error) {
        if (!(error instanceof AdapterFormatError)) {
          throw new Error(
            `mutation ${i} (kind ${kind}) threw ${(error as Error)?.name}: ${(error as Error)?.message}`,
          );
        }
        rejected++;
      }
    }
    expect(parsed + rejected).toBe(2000);
    expect(rejected).toBeGreaterThan(1000);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
