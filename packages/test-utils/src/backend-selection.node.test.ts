import { ALL_BACKENDS, optionalBackends, parseBackendList, selectedBackends } from './backend-selection';

describe('backend selection', () => {
  const g = globalThis as Record<string, unknown>;
  const saved = {
    backends: process.env.TFJS_PEFT_BACKENDS,
    optional: process.env.TFJS_PEFT_OPTIONAL_BACKENDS,
  };
  afterEach(() => {
    delete g.__TFJS_PEFT_BACKENDS__;
    delete g.__TFJS_PEFT_OPTIONAL_BACKENDS__;
    for (const [key, value] of [
      ['TFJS_PEFT_BACKENDS', saved.backends],
      ['TFJS_PEFT_OPTIONAL_BACKENDS', saved.optional],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('defaults to all four backends, tensorflow and webgpu optional unless strict (CI)', () => {
    const strict = process.env.TFJS_PEFT_STRICT_BACKENDS;
    delete process.env.TFJS_PEFT_BACKENDS;
    delete process.env.TFJS_PEFT_OPTIONAL_BACKENDS;
    delete process.env.TFJS_PEFT_STRICT_BACKENDS;
    expect(selectedBackends()).toEqual([...ALL_BACKENDS]);
    expect(optionalBackends()).toEqual(['tensorflow', 'webgpu']);
    process.env.TFJS_PEFT_STRICT_BACKENDS = '1';
    expect(optionalBackends()).toEqual(['tensorflow']);
    if (strict === undefined) delete process.env.TFJS_PEFT_STRICT_BACKENDS;
    else process.env.TFJS_PEFT_STRICT_BACKENDS = strict;
  });

  it('reads the environment, and the globals first', () => {
    process.env.TFJS_PEFT_BACKENDS = ' cpu , wasm,cpu';
    process.env.TFJS_PEFT_OPTIONAL_BACKENDS = '';
    expect(selectedBackends()).toEqual(['cpu', 'wasm']);
    expect(optionalBackends()).toEqual([]);
    g.__TFJS_PEFT_BACKENDS__ = ['webgpu'];
    expect(selectedBackends()).toEqual(['webgpu']);
  });

  it('rejects unknown names instead of ignoring them', () => {
    expect(() => parseBackendList('cpu,wgpu', 'TFJS_PEFT_BACKENDS')).toThrow(/unknown backend\(s\) wgpu/);
  });
});
