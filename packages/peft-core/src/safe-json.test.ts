import { AdapterFormatError } from './errors';
import { jsonNestingDepth, parseJsonObject } from './safe-json';

const utf8 = (text: string) => new TextEncoder().encode(text);

function rejection(bytes: Uint8Array, maxDepth?: number): string {
  try {
    parseJsonObject(bytes, 'adapter_config.json', maxDepth);
  } catch (error) {
    expect(error).toBeInstanceOf(AdapterFormatError);
    expect((error as AdapterFormatError).file).toBe('adapter_config.json');
    return (error as Error).message;
  }
  throw new Error('expected an AdapterFormatError');
}

describe('parseJsonObject', () => {
  afterEach(() => {
    delete (Object.prototype as Record<string, unknown>).polluted;
  });

  it('parses an object, UTF-8 text included', () => {
    expect(parseJsonObject(utf8('{"peft_type":"LORA","note":"ünï €"}'), 'adapter_config.json')).toEqual({
      peft_type: 'LORA',
      note: 'ünï €',
    });
  });

  it('rejects bytes that are not UTF-8, naming the file', () => {
    expect(rejection(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]))).toBe(
      'adapter_config.json: is not valid UTF-8',
    );
    expect(rejection(new Uint8Array([0x7b, 0xc0, 0x80, 0x7d]))).toMatch(/not valid UTF-8/);
  });

  it('rejects deep nesting before JSON.parse recurses, and counts only brackets outside strings', () => {
    const deep = '{"a":' + '['.repeat(200_000) + ']'.repeat(200_000) + '}';
    expect(rejection(utf8(deep))).toMatch(/nested deeper than 16 levels/);
    expect(rejection(utf8('{"a":{"b":{}}}'), 2)).toMatch(/nested deeper than 2 levels/);
    expect(parseJsonObject(utf8('{"a":{"b":1}}'), 'x', 2)).toEqual({ a: { b: 1 } });
    expect(jsonNestingDepth('{"a":"[[[[{{{{\\"[[["}')).toBe(1);
    expect(parseJsonObject(utf8('{"a":"[[[[{{{{\\"[[[["}'), 'x', 1)).toEqual({ a: '[[[[{{{{"[[[[' });
  });

  it('rejects arrays, primitives and null at the top', () => {
    for (const text of ['[]', '[{"a":1}]', '1', '"text"', 'true', 'null']) {
      expect(rejection(utf8(text))).toBe('adapter_config.json: must contain a JSON object');
    }
  });

  it('rejects text that is not JSON, with the parser message', () => {
    expect(rejection(utf8('{"r": 8,}'))).toMatch(/^adapter_config\.json: is not valid JSON \(/);
    expect(rejection(utf8(''))).toMatch(/is not valid JSON/);
  });

  it('keeps __proto__ and constructor as own data keys and pollutes no prototype', () => {
    const value = parseJsonObject(
      utf8('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"r":8}'),
      'adapter_config.json',
    );
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor', 'r']);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // Spreading or assigning the result into another object does not pollute either.
    const merged = { ...value };
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
  });
});
