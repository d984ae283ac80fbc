// The shape of the data slice scripts/extract-data.ts writes and the page reads (no Node imports).

export const SLICE = {
  /** The Node demo's default seed: same split as `pnpm demo`. */
  seed: 1234,
  trainSize: 96,
  testSize: 64,
  /** Characters kept per email: 32 tokens × 8 characters, as tools/demo caps them. */
  maxChars: 256,
} as const;

export const CLASS_NAMES = ['ham', 'spam'] as const;

export interface SliceEmail {
  key: string;
  /** 0 ham, 1 spam. */
  label: 0 | 1;
  text: string;
}

export interface SpamSlice {
  source: string;
  seed: number;
  maxChars: number;
  corpus: { emails: number; duplicatesRemoved: number; train: number; test: number };
  train: SliceEmail[];
  test: SliceEmail[];
}
