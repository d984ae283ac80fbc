// The data of fixtures/lstm-fortunes-multitask: four Debian fortune files, two binary tasks over all
// of them, a fixed train / held-out split by a hash of each text. The prompt-tuning test
// (packages/peft-prompt/src/prompt-tuning-lstm.node.test.ts) applies the same rules, read from the
// fixture's vocab.json.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const FORTUNES_DIR = '/usr/share/games/fortunes';
export const CATEGORIES = ['computers', 'politics', 'men-women', 'definitions'] as const;
export type Category = (typeof CATEGORIES)[number];

/**
 * Two questions about the same texts. They agree on computers (0) and politics (1) and disagree on
 * men-women and definitions, so a model that is not told the task is right on at most about 3/4 of
 * them. (The four files are the four of Debian's larger fortune files whose pairs a bag-of-words
 * classifier on the first 16 words separates best, ≥ 0.85 held-out for every pair.)
 */
export const TASKS = {
  A: {
    name: 'politics or men-women (1) vs computers or definitions (0)',
    positive: ['politics', 'men-women'],
  },
  B: {
    name: 'politics or definitions (1) vs computers or men-women (0)',
    positive: ['politics', 'definitions'],
  },
} as const satisfies Record<string, { name: string; positive: readonly Category[] }>;
export type TaskName = keyof typeof TASKS;
export const label = (task: TaskName, category: Category): number =>
  (TASKS[task].positive as readonly Category[]).includes(category) ? 1 : 0;

export const SPECIAL_TOKENS = ['<pad>', '<unk>', '<task:A>', '<task:B>'];
export const PAD = 0;
export const UNKNOWN = 1;
export const TASK_TOKEN: Record<TaskName, number> = { A: 2, B: 3 };
export const MAX_WORDS = 16;
/** Texts per category and set (the smallest category, men-women, has about this many in each). */
export const PER_CATEGORY = { train: 450, heldOut: 100 };
export const HELD_OUT_RULE =
  'FNV-1a 32-bit hash of the whitespace-collapsed text: held out when hash % 5 === 0, else train; ' +
  'texts found in more than one category dropped; per category and set, the texts ordered by hash and ' +
  `the first ${PER_CATEGORY.train} (train) / ${PER_CATEGORY.heldOut} (held-out) kept`;

export interface Text {
  category: Category;
  /** Position in readFortunes(category): what vocab.json's `split` lists. */
  index: number;
  text: string;
  words: string[];
  hash: number;
}

export const words = (text: string): string[] => text.toLowerCase().match(/[a-z']+/g) ?? [];

export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function readFortunes(category: string, dir = FORTUNES_DIR): string[] {
  const file = path.join(dir, category);
  if (!existsSync(file))
    throw new Error(`${file} not found: install the Debian package (apt-get install -y fortunes)`);
  return readFileSync(file, 'latin1')
    .split(/\n%\n/)
    .map((t) => t.replace(/\s+/g, ' ').trim())
    .filter((t) => t.length > 0);
}

export function loadSplit(dir = FORTUNES_DIR): { train: Text[]; heldOut: Text[]; fileCounts: number[] } {
  const files = CATEGORIES.map((c) => readFortunes(c, dir));
  // Each text once per file (its first occurrence), and only texts of exactly one file.
  const byCategory = files.map((texts) =>
    texts.map((text, index) => ({ text, index })).filter((t, i) => texts.indexOf(t.text) === i),
  );
  const seen = new Map<string, number>();
  byCategory.flat().forEach(({ text }) => seen.set(text, (seen.get(text) ?? 0) + 1));
  const train: Text[] = [];
  const heldOut: Text[] = [];
  byCategory.forEach((texts, c) => {
    const all = texts
      .filter(({ text }) => seen.get(text) === 1)
      .map(({ text, index }) => ({
        category: CATEGORIES[c],
        index,
        text,
        words: words(text),
        hash: fnv1a(text),
      }))
      .sort((a, b) => a.hash - b.hash || (a.text < b.text ? -1 : 1));
    train.push(...all.filter((t) => t.hash % 5 !== 0).slice(0, PER_CATEGORY.train));
    heldOut.push(...all.filter((t) => t.hash % 5 === 0).slice(0, PER_CATEGORY.heldOut));
  });
  return { train, heldOut, fileCounts: files.map((f) => f.length) };
}

/** Word ids of a text: its first MAX_WORDS words, unknown words → 1, padded with 0 to MAX_WORDS. */
export function encode(textWords: readonly string[], ids: ReadonlyMap<string, number>): number[] {
  const out = textWords.slice(0, MAX_WORDS).map((w) => ids.get(w) ?? UNKNOWN);
  return [...out, ...new Array<number>(MAX_WORDS - out.length).fill(PAD)];
}

/** mulberry32: the seeded generator of the training order. */
export function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
