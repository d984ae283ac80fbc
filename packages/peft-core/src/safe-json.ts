import { AdapterFormatError } from './errors';

/** Counts bracket nesting outside strings, so a hostile file cannot make JSON.parse recurse deeply. */
export function jsonNestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/**
 * Parses a JSON object from untrusted bytes: strict UTF-8, bounded nesting, an object at the top.
 * The result is data only (JSON.parse never runs code); keys like `__proto__` stay own properties and
 * are never merged into other objects by our readers.
 */
export function parseJsonObject(bytes: Uint8Array, fileName: string, maxDepth = 16): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new AdapterFormatError(fileName, 'is not valid UTF-8');
  }
  if (jsonNestingDepth(text) > maxDepth)
    throw new AdapterFormatError(fileName, `JSON is nested deeper than ${maxDepth} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AdapterFormatError(fileName, `is not valid JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new AdapterFormatError(fileName, 'must contain a JSON object');
  }
  return value as Record<string, unknown>;
}
