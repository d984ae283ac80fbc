import * as tfl from '@tensorflow/tfjs-layers';
import { TargetNotFoundError } from './errors';
import { editDistance, matchTargetLayers, moduleKey } from './target-matching';

// Unbuilt layers hold no weights, so these tests need no backend.
const dense = (name: string) => tfl.layers.dense({ name, units: 2 });
const layers = [
  dense('encoder/layer_0/attention/query'),
  dense('encoder/layer_0/attention/key'),
  dense('encoder/layer_0/attention/value'),
  dense('encoder/layer_0/ffn/intermediate'),
  tfl.layers.layerNormalization({ name: 'encoder/layer_0/ln' }),
  dense('encoder/layer_1/attention/query'),
  dense('pooler.dense'),
  tfl.layers.dropout({ name: 'drop', rate: 0.1 }),
  dense('head'),
];
const names = (selected: tfl.layers.Layer[]) => selected.map((l) => l.name);

function notFound(fn: () => unknown): TargetNotFoundError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TargetNotFoundError);
    return error as TargetNotFoundError;
  }
  throw new Error('expected a TargetNotFoundError');
}

describe('matchTargetLayers', () => {
  it('matches exact names', () => {
    expect(names(matchTargetLayers(layers, ['head']))).toEqual(['head']);
    expect(names(matchTargetLayers(layers, 'encoder/layer_0/attention/key'))).toEqual([
      'encoder/layer_0/attention/key',
    ]);
  });

  it("matches a suffix after '/' or '.', never a partial segment", () => {
    expect(names(matchTargetLayers(layers, ['query']))).toEqual([
      'encoder/layer_0/attention/query',
      'encoder/layer_1/attention/query',
    ]);
    expect(names(matchTargetLayers(layers, ['layer_0.attention.value']))).toEqual([
      'encoder/layer_0/attention/value',
    ]);
    expect(names(matchTargetLayers(layers, ['layer_0/attention/value']))).toEqual([
      'encoder/layer_0/attention/value',
    ]);
    expect(names(matchTargetLayers(layers, ['dense']))).toEqual(['pooler.dense']);
    // 'ery' is a substring of 'query' but not a segment.
    notFound(() => matchTargetLayers(layers, ['ery']));
  });

  it('matches class names', () => {
    expect(names(matchTargetLayers(layers, ['LayerNormalization']))).toEqual(['encoder/layer_0/ln']);
    expect(matchTargetLayers(layers, ['Dense'])).toHaveLength(7);
  });

  it('tests a RegExp against the layer name, and the global flag does not make it stateful', () => {
    expect(names(matchTargetLayers(layers, /layer_1/))).toEqual(['encoder/layer_1/attention/query']);
    expect(names(matchTargetLayers(layers, [/^encoder\/layer_\d\/attention\/(query|value)$/]))).toEqual([
      'encoder/layer_0/attention/query',
      'encoder/layer_0/attention/value',
      'encoder/layer_1/attention/query',
    ]);
    // PEFT-style dotted paths work too.
    expect(names(matchTargetLayers(layers, [/^encoder\.layer_0\.ffn\.intermediate$/]))).toEqual([
      'encoder/layer_0/ffn/intermediate',
    ]);
    const sticky = /query/g;
    expect(matchTargetLayers(layers, [sticky])).toHaveLength(2);
    expect(matchTargetLayers(layers, [sticky])).toHaveLength(2);
  });

  it('returns layers in model order, each once, whatever the order of the entries', () => {
    expect(names(matchTargetLayers(layers, ['head', 'query', /attention\/query/]))).toEqual([
      'encoder/layer_0/attention/query',
      'encoder/layer_1/attention/query',
      'head',
    ]);
  });

  it("'all-dense' selects every Dense but the output head", () => {
    const selected = names(matchTargetLayers(layers, 'all-dense', { outputLayerNames: new Set(['head']) }));
    expect(selected).toHaveLength(6);
    expect(selected).not.toContain('head');
    expect(selected).not.toContain('encoder/layer_0/ln');
    const onlyHead = [dense('head')];
    const error = notFound(() =>
      matchTargetLayers(onlyHead, 'all-dense', { outputLayerNames: new Set(['head']) }),
    );
    expect(error.target).toBe("'all-dense'");
  });

  it('excludeModules removes layers, with the same syntax as targets', () => {
    expect(
      names(matchTargetLayers(layers, ['query', 'key'], { excludeModules: ['layer_1.attention.query'] })),
    ).toEqual(['encoder/layer_0/attention/query', 'encoder/layer_0/attention/key']);
    expect(names(matchTargetLayers(layers, 'all-dense', { excludeModules: /^encoder\// }))).toEqual([
      'pooler.dense',
      'head',
    ]);
    expect(
      matchTargetLayers(layers, ['Dense', 'LayerNormalization'], { excludeModules: 'all-dense' }).map(
        (l) => l.name,
      ),
    ).toEqual(['encoder/layer_0/ln']);
  });

  it('an entry that matches nothing throws TargetNotFoundError, even when other entries match', () => {
    const error = notFound(() => matchTargetLayers(layers, ['query', 'haed']));
    expect(error.target).toBe('"haed"');
    expect(error.closestLayerNames[0]).toBe('head');
    expect(error.message).toMatch(
      /^Target module "haed" matches no layer of the model\. Layers, closest first: head, /,
    );
    // InputLayers are never candidates.
    expect(error.closestLayerNames).toHaveLength(layers.length);
  });

  it('ranks by the closest name suffix, since a target may name only the last segments', () => {
    const error = notFound(() => matchTargetLayers(layers, ['qurey']));
    expect(error.closestLayerNames.slice(0, 2)).toEqual([
      'encoder/layer_0/attention/query',
      'encoder/layer_1/attention/query',
    ]);
    const dotted = notFound(() => matchTargetLayers(layers, ['attention.vaule']));
    expect(dotted.closestLayerNames[0]).toBe('encoder/layer_0/attention/value');
  });

  it('lists layer names closest first for a RegExp entry too, and truncates long lists', () => {
    const error = notFound(() => matchTargetLayers(layers, [/^pooler\.dence$/]));
    expect(error.target).toBe('/^pooler\\.dence$/');
    const many = Array.from({ length: 20 }, (_, i) => dense(`block_${i}`));
    const long = notFound(() => matchTargetLayers(many, ['block_7x']));
    expect(long.closestLayerNames[0]).toBe('block_7');
    expect(long.message).toMatch(/… \(20 in all\)$/);
  });

  it('skips InputLayers', () => {
    const input = tfl.layers.inputLayer({ name: 'input', inputShape: [2] });
    expect(names(matchTargetLayers([input, dense('fc')], ['InputLayer', 'fc'].slice(1)))).toEqual(['fc']);
    notFound(() => matchTargetLayers([input, dense('fc')], ['input']));
  });
});

describe('moduleKey and editDistance', () => {
  it('turn tfjs paths into PEFT module keys and measure edits', () => {
    expect(moduleKey('encoder/layer_0/query')).toBe('encoder.layer_0.query');
    expect(editDistance('haed', 'head')).toBe(2);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});
