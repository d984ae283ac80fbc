// Which tfjs backends the shared tests run on. Environment-agnostic: the Node jest run reads
// process.env, a browser runner sets globalThis.__TFJS_PEFT_BACKENDS__ (and
// __TFJS_PEFT_OPTIONAL_BACKENDS__) before the test bundle runs.

/** The default set, all available in Node. */
export const ALL_BACKENDS = ['cpu', 'wasm', 'webgpu', 'tensorflow'] as const;
/** Every name accepted in the lists: the defaults plus `webgl`, which only a browser runner provides. */
export const KNOWN_BACKENDS = [...ALL_BACKENDS, 'webgl'] as const;
export type BackendName = (typeof KNOWN_BACKENDS)[number];

/**
 * Backends that are skipped (loudly) rather than failed when they cannot be initialised: tfjs-node's
 * binding is built from a wheel only some machines have; webgpu in Node needs Mesa's EGL libraries.
 * With TFJS_PEFT_STRICT_BACKENDS=1 (CI sets it, after installing those libraries) webgpu is required.
 */
export const DEFAULT_OPTIONAL_BACKENDS: readonly BackendName[] = ['tensorflow', 'webgpu'];
export const STRICT_OPTIONAL_BACKENDS: readonly BackendName[] = ['tensorflow'];

function readSetting(globalName: string, envName: string): string | undefined {
  const fromGlobal = (globalThis as Record<string, unknown>)[globalName];
  if (fromGlobal !== undefined && fromGlobal !== null) {
    return Array.isArray(fromGlobal) ? fromGlobal.join(',') : String(fromGlobal);
  }
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[envName];
}

/** Parses a comma-separated list of backend names; throws on unknown names so typos are not silent. */
export function parseBackendList(value: string, source: string): BackendName[] {
  const names = value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
  const unknown = names.filter((name) => !(KNOWN_BACKENDS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(
      `${source}: unknown backend(s) ${unknown.join(', ')}; known: ${KNOWN_BACKENDS.join(', ')}`,
    );
  }
  return [...new Set(names)] as BackendName[];
}

/** The backends to run: `__TFJS_PEFT_BACKENDS__` or env `TFJS_PEFT_BACKENDS` (comma list), default all. */
export function selectedBackends(): BackendName[] {
  const value = readSetting('__TFJS_PEFT_BACKENDS__', 'TFJS_PEFT_BACKENDS');
  return value === undefined || value.trim() === ''
    ? [...ALL_BACKENDS]
    : parseBackendList(value, 'TFJS_PEFT_BACKENDS');
}

/** Backends skipped rather than failed when unavailable: `__TFJS_PEFT_OPTIONAL_BACKENDS__` or env
 * `TFJS_PEFT_OPTIONAL_BACKENDS` (comma list; empty string = none optional), default as above. */
export function optionalBackends(): BackendName[] {
  const value = readSetting('__TFJS_PEFT_OPTIONAL_BACKENDS__', 'TFJS_PEFT_OPTIONAL_BACKENDS');
  if (value !== undefined) return parseBackendList(value, 'TFJS_PEFT_OPTIONAL_BACKENDS');
  const strict = readSetting('__TFJS_PEFT_STRICT_BACKENDS__', 'TFJS_PEFT_STRICT_BACKENDS') === '1';
  return [...(strict ? STRICT_OPTIONAL_BACKENDS : DEFAULT_OPTIONAL_BACKENDS)];
}
