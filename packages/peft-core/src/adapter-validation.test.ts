import { assertFiniteAdapterTensors, NonFiniteAdapterValueError } from './adapter-validation';
import { AdapterFormatError, PeftError } from './errors';
import { parseSafetensors, serializeSafetensors } from './safetensors';

function file(entries: Record<string, number[]>) {
  return new Map(
    Object.entries(entries).map(([k, v]) => [k, { shape: [v.length], data: Float32Array.from(v) }]),
  );
}

function refusal(tensors: ReadonlyMap<string, { data: ArrayLike<number> }>): NonFiniteAdapterValueError {
  try {
    assertFiniteAdapterTensors(tensors);
  } catch (error) {
    expect(error).toBeInstanceOf(NonFiniteAdapterValueError);
    expect(error).toBeInstanceOf(AdapterFormatError);
    expect(error).toBeInstanceOf(PeftError);
    return error as NonFiniteAdapterValueError;
  }
  throw new Error('expected a NonFiniteAdapterValueError');
}

describe('assertFiniteAdapterTensors', () => {
  it('accepts finite values, including -0, subnormals, the float32 extremes and empty tensors', () => {
    expect(() =>
      assertFiniteAdapterTensors(
        file({
          a: [0, -0, 1e-45, -1e-45, 3.4028234663852886e38, -3.4028234663852886e38, 1.17549435e-38],
          empty: [],
        }),
      ),
    ).not.toThrow();
  });

  for (const bad of [NaN, Infinity, -Infinity]) {
    it(`refuses ${bad}, naming the key, the element and the file`, () => {
      const error = refusal(
        file({
          'base_model.model.fc1.lora_A.weight': [1, 2],
          'base_model.model.fc1.lora_B.weight': [3, 4, bad, 5],
        }),
      );
      expect(error.key).toBe('base_model.model.fc1.lora_B.weight');
      expect(error.index).toBe(2);
      expect(Object.is(error.value, bad)).toBe(true);
      expect(error.file).toBe('adapter_model.safetensors');
      expect(error.message).toBe(
        `adapter_model.safetensors: tensor "base_model.model.fc1.lora_B.weight" holds ${bad} at element 2; adapter weights must be finite`,
      );
    });
  }

  it('finds values that only become non-finite when decoded (F64 beyond the float32 range)', () => {
    // F64 1e300 decodes to float32 Infinity: the check runs on what would be loaded.
    const header = { w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } };
    const headerBytes = new TextEncoder().encode(JSON.stringify(header));
    const bytes = new Uint8Array(8 + headerBytes.length + 8);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(headerBytes.length), true);
    bytes.set(headerBytes, 8);
    view.setFloat64(8 + headerBytes.length, 1e300, true);
    expect(refusal(parseSafetensors(bytes).tensors).key).toBe('w');
  });

  it('round-trips through serializeSafetensors: a saved NaN is refused on the way back in', () => {
    const parsed = parseSafetensors(serializeSafetensors(file({ ok: [1], bad: [NaN] })));
    expect(refusal(parsed.tensors).key).toBe('bad');
  });

  it('is pure: the tensors are not modified', () => {
    const tensors = file({ w: [1, NaN] });
    refusal(tensors);
    expect(Number.isNaN(tensors.get('w')!.data[1])).toBe(true);
    expect(tensors.get('w')!.data[0]).toBe(1);
  });
});
