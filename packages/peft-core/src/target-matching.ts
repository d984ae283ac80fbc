import type * as tfl from '@tensorflow/tfjs-layers';
import { TargetNotFoundError } from './errors';
import type { TargetModules } from './peft-config';

/**
 * Target selection, as Hugging Face PEFT users know it, without its traps:
 * - a string matches a layer name exactly, a name suffix after a `/` or `.` separator
 *   (`query` matches `encoder/layer_0/attention/query`), or a layer class name (`Dense`);
 * - a RegExp is tested against the whole layer name (write `^…$` to anchor it);
 * - `'all-dense'` selects every Dense layer except the one that produces the model's output;
 * - every entry of a list must match at least one layer: a misspelled target is an error, not a silent no-op.
 */
export function moduleKey(layerName: string): string {
  // PEFT's module paths use dots; nested tfjs names use slashes.
  return layerName.replace(/\//g, '.');
}

function entryMatches(entry: string | RegExp, layer: tfl.layers.Layer): boolean {
  if (entry instanceof RegExp) {
    entry.lastIndex = 0;
    return entry.test(layer.name) || ((entry.lastIndex = 0), entry.test(moduleKey(layer.name)));
  }
  const name = moduleKey(layer.name);
  const target = moduleKey(entry);
  return name === target || name.endsWith(`.${target}`) || layer.getClassName() === entry;
}

export interface MatchOptions {
  /** Layers that must never be selected (e.g. the output head for 'all-dense'). */
  outputLayerNames?: ReadonlySet<string>;
  /** Same syntax as targets; matching layers are removed from the selection. */
  excludeModules?: TargetModules | null;
}

export function describeTarget(entry: string | RegExp): string {
  return entry instanceof RegExp ? entry.toString() : JSON.stringify(entry);
}

/** Returns the selected layers in model order, or throws naming the entry that matched nothing. */
export function matchTargetLayers(
  layers: readonly tfl.layers.Layer[],
  targets: TargetModules,
  options: MatchOptions = {},
): tfl.layers.Layer[] {
  const candidates = layers.filter((l) => l.getClassName() !== 'InputLayer');
  let selected: Set<tfl.layers.Layer>;
  if (targets === 'all-dense') {
    selected = new Set(
      candidates.filter((l) => l.getClassName() === 'Dense' && !options.outputLayerNames?.has(l.name)),
    );
    if (selected.size === 0)
      throw new TargetNotFoundError("'all-dense'", rankByCloseness('Dense', candidates));
  } else {
    const entries: ReadonlyArray<string | RegExp> =
      typeof targets === 'string' || targets instanceof RegExp ? [targets] : targets;
    selected = new Set();
    for (const entry of entries) {
      const hits = candidates.filter((l) => entryMatches(entry, l));
      if (hits.length === 0) {
        throw new TargetNotFoundError(
          describeTarget(entry),
          rankByCloseness(entry instanceof RegExp ? entry.source : entry, candidates),
        );
      }
      hits.forEach((h) => selected.add(h));
    }
  }
  if (options.excludeModules != null) {
    const excluded = options.excludeModules;
    const entries: ReadonlyArray<string | RegExp> =
      excluded === 'all-dense'
        ? ['Dense']
        : typeof excluded === 'string' || excluded instanceof RegExp
          ? [excluded]
          : excluded;
    for (const layer of [...selected])
      if (entries.some((e) => entryMatches(e, layer))) selected.delete(layer);
  }
  return candidates.filter((l) => selected.has(l));
}

function rankByCloseness(query: string, layers: readonly tfl.layers.Layer[]): string[] {
  const q = moduleKey(query).toLowerCase();
  // A target may name only the last segments of a path, so compare with every segment suffix.
  const distance = (name: string) => {
    const segments = moduleKey(name).toLowerCase().split('.');
    let best = Infinity;
    for (let i = 0; i < segments.length; i++)
      best = Math.min(best, editDistance(q, segments.slice(i).join('.')));
    return best;
  };
  return layers
    .map((l) => ({ name: l.name, distance: distance(l.name) }))
    .sort((a, b) => a.distance - b.distance || a.name.localeCompare(b.name))
    .map((e) => e.name);
}

/** Levenshtein distance, for "did you mean" lists. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}
