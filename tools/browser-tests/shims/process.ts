// Stands in for Node's `process` inside bundled test code (esbuild `inject`). It has no
// `versions.node`, so tfjs still detects a browser; `env` is empty so `process.env.X` reads
// give undefined instead of throwing.
export const process = {
  env: {} as Record<string, string | undefined>,
  argv: [] as string[],
  platform: 'browser',
  browser: true,
  versions: {} as Record<string, string>,
  cwd: () => '/',
  nextTick: (callback: (...args: unknown[]) => void, ...args: unknown[]) =>
    queueMicrotask(() => callback(...args)),
  on: () => undefined,
  emitWarning: (warning: unknown) => console.warn(warning),
};
