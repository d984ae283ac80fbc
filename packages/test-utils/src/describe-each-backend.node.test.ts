// Node only: in Node webgl is never available, which is the premise of this test (in a browser it is).
import { describeEachBackend } from './describe-each-backend';

describe('unavailable optional backend', () => {
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  const g = globalThis as Record<string, unknown>;
  g.__TFJS_PEFT_BACKENDS__ = 'webgl';
  g.__TFJS_PEFT_OPTIONAL_BACKENDS__ = 'webgl';
  try {
    // In Node, webgl is unavailable: this must register exactly one skipped test titled SKIPPED webgl: ...
    describeEachBackend('never runs', () => {
      it('would fail', () => {
        throw new Error('must not run');
      });
    });
  } finally {
    delete g.__TFJS_PEFT_BACKENDS__;
    delete g.__TFJS_PEFT_OPTIONAL_BACKENDS__;
  }
  const warnings = warn.mock.calls.map((call) => String(call[0]));
  warn.mockRestore();
  it('warns loudly at collection time', () => {
    expect(warnings).toEqual([
      expect.stringMatching(/^\[tfjs-peft\] SKIPPED backend webgl: webgl needs a browser/),
    ]);
  });
});
