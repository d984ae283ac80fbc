// A small POSIX `path` for bundled code that formats file names (jest's `expect` does, in
// stack traces); the browser has no file system, so the working directory is '/'.
export const sep = '/';
export const delimiter = ':';

export function normalize(input: string): string {
  const absolute = input.startsWith('/');
  const parts: string[] = [];
  for (const part of input.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..' && parts.length > 0 && parts[parts.length - 1] !== '..') parts.pop();
    else if (part !== '..' || !absolute) parts.push(part);
  }
  const joined = parts.join('/');
  return absolute ? `/${joined}` : joined || '.';
}

export const isAbsolute = (input: string) => input.startsWith('/');
export const join = (...parts: string[]) => normalize(parts.filter((part) => part !== '').join('/') || '.');

export function resolve(...parts: string[]): string {
  let resolved = '';
  for (let index = parts.length - 1; index >= 0 && !resolved.startsWith('/'); index--) {
    if (parts[index]) resolved = resolved ? `${parts[index]}/${resolved}` : parts[index];
  }
  return normalize(resolved.startsWith('/') ? resolved : `/${resolved}`);
}

export function relative(from: string, to: string): string {
  const fromParts = resolve(from).split('/').filter(Boolean);
  const toParts = resolve(to).split('/').filter(Boolean);
  let common = 0;
  while (common < fromParts.length && common < toParts.length && fromParts[common] === toParts[common])
    common++;
  return [...fromParts.slice(common).map(() => '..'), ...toParts.slice(common)].join('/');
}

export function dirname(input: string): string {
  const trimmed = input.length > 1 ? input.replace(/\/+$/, '') : input;
  const slash = trimmed.lastIndexOf('/');
  if (slash < 0) return '.';
  return slash === 0 ? '/' : trimmed.slice(0, slash);
}

export function basename(input: string, extension?: string): string {
  const base = input.replace(/\/+$/, '').split('/').pop() ?? '';
  return extension && base.endsWith(extension) && base !== extension
    ? base.slice(0, -extension.length)
    : base;
}

export function extname(input: string): string {
  const base = basename(input);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot);
}

export const posix = {
  sep,
  delimiter,
  normalize,
  isAbsolute,
  join,
  resolve,
  relative,
  dirname,
  basename,
  extname,
};
export default posix;
