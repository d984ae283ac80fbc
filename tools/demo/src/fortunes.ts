// The second task: topic classification of Debian's fortune cookies (package `fortunes`,
// /usr/share/games/fortunes/<category>: texts separated by lines holding a single `%`).
// Installed with `apt-get install -y fortunes` (fortunes-min has only the `fortunes` file).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Example } from './data';

export const FORTUNES_DIR = '/usr/share/games/fortunes';
/**
 * Six categories with a clear topic (and enough fortunes for a test set): 1,050 computers, 198 food,
 * 205 law, 703 politics, 625 science, 147 sports in fortunes 1:1.99.1-7 (counts before deduplication).
 */
export const FORTUNE_CATEGORIES = ['computers', 'food', 'law', 'politics', 'science', 'sports'] as const;

export function fortunesMissing(dir = FORTUNES_DIR): string | undefined {
  const missing = FORTUNE_CATEGORIES.filter((c) => !existsSync(path.join(dir, c)));
  return missing.length ? `${dir}/{${missing.join(',')}} not found: install the Debian package (apt-get install -y fortunes)` : undefined;
}

/** Every fortune of the categories, whitespace collapsed; key `<category>/<index in file>`. */
export function loadFortunes(dir = FORTUNES_DIR): Example[] {
  const why = fortunesMissing(dir);
  if (why) throw new Error(why);
  const out: Example[] = [];
  FORTUNE_CATEGORIES.forEach((category, label) => {
    const raw = readFileSync(path.join(dir, category), 'utf8').replace(/\r\n/g, '\n');
    raw.split(/^%\s*$/m).forEach((chunk, index) => {
      const text = chunk.replace(/\s+/g, ' ').trim();
      if (text) out.push({ key: `${category}/${index}`, group: category, label, text });
    });
  });
  return out;
}
