import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSafetensors, serializeSafetensors } from './safetensors';

const fixtures = join(__dirname, '..', '..', '..', 'fixtures');

describe('parseSafetensors on files written by Python (safetensors 0.8.0, PEFT 0.21.0)', () => {
  it('reads fixtures/lora-mlp/adapter_model.safetensors with PEFT keys, [r, in] / [out, r] shapes and values', () => {
    const file = parseSafetensors(
      new Uint8Array(readFileSync(join(fixtures, 'lora-mlp', 'adapter_model.safetensors'))),
    );
    expect(file.metadata).toEqual({ format: 'pt' });
    const shapes = Object.fromEntries([...file.tensors].map(([name, t]) => [name, t.shape]));
    expect(shapes).toEqual({
      'base_model.model.fc1.lora_A.weight': [4, 6],
      'base_model.model.fc1.lora_B.weight': [10, 4],
      'base_model.model.fc2.lora_A.weight': [4, 10],
      'base_model.model.fc2.lora_B.weight': [8, 4],
    });
    for (const t of file.tensors.values()) {
      expect(t.dtype).toBe('F32');
      expect(t.data.length).toBe(t.shape[0] * t.shape[1]);
    }
    // The first values of fc1.lora_A as Python wrote them (struct.unpack('<3f', …)).
    expect([...file.tensors.get('base_model.model.fc1.lora_A.weight')!.data.subarray(0, 3)]).toEqual([
      -0.3170747756958008, 0.25788483023643494, -0.19386734068393707,
    ]);
  });

  it('reads the DoRA fixture with its magnitude vectors, and the base weights in PyTorch [out, in] layout', () => {
    const dora = parseSafetensors(
      new Uint8Array(readFileSync(join(fixtures, 'lora-mlp-dora', 'adapter_model.safetensors'))),
    );
    expect(dora.tensors.get('base_model.model.fc1.lora_magnitude_vector')!.shape).toEqual([10]);
    expect(dora.tensors.get('base_model.model.fc2.lora_magnitude_vector')!.shape).toEqual([8]);
    const base = parseSafetensors(
      new Uint8Array(readFileSync(join(fixtures, 'lora-mlp', 'base_model.safetensors'))),
    );
    expect(base.tensors.get('fc1.weight')!.shape).toEqual([10, 6]);
    expect(base.tensors.get('head.bias')!.shape).toEqual([3]);
  });

  it('re-serialises a Python file to the same tensors', () => {
    const original = parseSafetensors(
      new Uint8Array(readFileSync(join(fixtures, 'lora-mlp', 'adapter_model.safetensors'))),
    );
    const again = parseSafetensors(serializeSafetensors(original.tensors));
    expect(again.tensors).toEqual(original.tensors);
  });
});
