import {
  hasOwn,
  rejectUnknownFields,
  requireBoolean,
  requireInteger,
  requireIntegerList,
  requireNumber,
  requireNumberRecord,
  requireOneOf,
  requireStringList,
} from './config-validation';
import { PeftConfigError, describeValue } from './errors';

/** Runs `fn`, expects a PeftConfigError for `field`, and returns its message. */
function configError(fn: () => unknown, field: string): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(PeftConfigError);
    expect((error as PeftConfigError).field).toBe(field);
    return (error as Error).message;
  }
  throw new Error(`expected a PeftConfigError for ${field}`);
}

describe('config validation helpers', () => {
  it('requireInteger names the field, the value and the range', () => {
    expect(requireInteger('r', 8, 1)).toBe(8);
    expect(configError(() => requireInteger('r', 0, 1), 'r')).toBe(
      `Invalid config field "r": 0 — expected an integer in [1, ${Number.MAX_SAFE_INTEGER}]`,
    );
    expect(configError(() => requireInteger('r', 2.5, 1, 64), 'r')).toMatch(
      /"r": 2\.5 — expected an integer in \[1, 64\]/,
    );
    expect(configError(() => requireInteger('r', '8', 1), 'r')).toMatch(/"r": "8"/);
    expect(configError(() => requireInteger('r', 65, 1, 64), 'r')).toMatch(/"r": 65/);
    expect(configError(() => requireInteger('r', NaN, 1), 'r')).toMatch(/"r": NaN/);
    expect(configError(() => requireInteger('r', undefined, 1), 'r')).toMatch(/"r": undefined/);
  });

  it('requireNumber rejects non-finite values and respects an exclusive minimum', () => {
    expect(requireNumber('loraDropout', 0, 0, 1)).toBe(0);
    expect(configError(() => requireNumber('loraDropout', 1.5, 0, 1), 'loraDropout')).toMatch(
      /"loraDropout": 1\.5 — expected a finite number in \[0, 1\]/,
    );
    expect(configError(() => requireNumber('loraAlpha', NaN), 'loraAlpha')).toMatch(/"loraAlpha": NaN/);
    expect(configError(() => requireNumber('loraAlpha', Infinity), 'loraAlpha')).toMatch(
      /"loraAlpha": Infinity/,
    );
    expect(configError(() => requireNumber('loraAlpha', -Infinity), 'loraAlpha')).toMatch(
      /"loraAlpha": -Infinity/,
    );
    expect(configError(() => requireNumber('scale', 0, 0, 10, { exclusiveMin: true }), 'scale')).toMatch(
      /"scale": 0 — expected a finite number in \(0, 10\]/,
    );
    expect(requireNumber('scale', 1e-9, 0, 10, { exclusiveMin: true })).toBe(1e-9);
  });

  it('requireBoolean and requireOneOf name the bad value and the choices', () => {
    expect(requireBoolean('useDora', false)).toBe(false);
    expect(configError(() => requireBoolean('useDora', 'true'), 'useDora')).toBe(
      'Invalid config field "useDora": "true" — expected true or false',
    );
    expect(requireOneOf('bias', 'all', ['none', 'all', 'lora_only'])).toBe('all');
    expect(configError(() => requireOneOf('bias', 'al', ['none', 'all', 'lora_only']), 'bias')).toBe(
      'Invalid config field "bias": "al" — expected one of "none", "all", "lora_only"',
    );
    expect(configError(() => requireOneOf('bias', null, ['none']), 'bias')).toMatch(/"bias": null/);
  });

  it('requireStringList and requireIntegerList name the bad list', () => {
    expect(requireStringList('modulesToSave', ['head'])).toEqual(['head']);
    expect(configError(() => requireStringList('modulesToSave', ['head', '']), 'modulesToSave')).toMatch(
      /"modulesToSave": \["head",""\] — expected a list of non-empty strings/,
    );
    expect(configError(() => requireStringList('modulesToSave', 'head'), 'modulesToSave')).toMatch(/"head"/);
    expect(requireIntegerList('layersToTransform', [0, 2])).toEqual([0, 2]);
    expect(configError(() => requireIntegerList('layersToTransform', [0, -1]), 'layersToTransform')).toMatch(
      /\[0,-1\] — expected a list of integers ≥ 0/,
    );
    expect(configError(() => requireIntegerList('layersToTransform', [1.5], 1), 'layersToTransform')).toMatch(
      /≥ 1/,
    );
  });

  it('requireNumberRecord names the pattern at fault and builds a prototype-free record', () => {
    const record = requireNumberRecord('rankPattern', { '^fc1$': 4, __proto__: 8 } as unknown, 1, true);
    expect(Object.getPrototypeOf(record)).toBeNull();
    expect(record['^fc1$']).toBe(4);
    expect(
      configError(() => requireNumberRecord('rankPattern', { fc1: 2.5 }, 1, true), 'rankPattern.fc1'),
    ).toBe('Invalid config field "rankPattern.fc1": 2.5 — expected an integer ≥ 1');
    expect(
      configError(() => requireNumberRecord('alphaPattern', { fc1: -1 }, 0, false), 'alphaPattern.fc1'),
    ).toMatch(/-1 — expected a number ≥ 0/);
    expect(configError(() => requireNumberRecord('alphaPattern', [1], 0, false), 'alphaPattern')).toMatch(
      /expected an object mapping/,
    );
    const own = JSON.parse('{"__proto__": 3}');
    const parsed = requireNumberRecord('rankPattern', own, 1, true);
    expect(Object.keys(parsed)).toEqual(['__proto__']);
    expect(parsed.__proto__).toBe(3);
  });

  it('rejectUnknownFields catches a typo and lists the known fields', () => {
    expect(() =>
      rejectUnknownFields('LoraConfig', { r: 8, loraAlpha: 16 }, ['r', 'loraAlpha']),
    ).not.toThrow();
    const message = configError(
      () => rejectUnknownFields('LoraConfig', { r: 8, loraAlfa: 16 }, ['r', 'loraAlpha', 'loraDropout']),
      'loraAlfa',
    );
    expect(message).toBe(
      'Invalid config field "loraAlfa": 16 — is not a field of LoraConfig; known fields: r, loraAlpha, loraDropout',
    );
  });

  it('hasOwn ignores inherited keys', () => {
    expect(hasOwn({}, 'toString')).toBe(false);
    expect(hasOwn(JSON.parse('{"__proto__":1}'), '__proto__')).toBe(true);
  });

  it('describeValue shows values as a user wrote them', () => {
    expect(describeValue(undefined)).toBe('undefined');
    expect(describeValue(NaN)).toBe('NaN');
    expect(describeValue(-Infinity)).toBe('-Infinity');
    expect(describeValue(/^fc\d$/g)).toBe('/^fc\\d$/g');
    expect(describeValue(10n)).toBe('10');
    expect(describeValue('x'.repeat(100))).toBe(JSON.stringify('x'.repeat(100)));
    expect(describeValue(Array.from({ length: 50 }, (_, i) => i))).toMatch(/\.\.\.$/);
  });
});
