import { PeftConfigError } from '@tfjs-peft/core';
import { BottleneckConfig } from './index';

describe('BottleneckConfig', () => {
  it('has AdapterHub-like defaults', () => {
    const config = new BottleneckConfig({ placement: 'pfeiffer' });
    expect(config).toMatchObject({
      peftType: 'BOTTLENECK',
      placement: 'pfeiffer',
      reductionFactor: 16,
      nonLinearity: 'relu',
      scaling: 1,
      layerNorm: null,
      initWeights: 'identity',
      modulesToSave: null,
      taskType: null,
    });
  });

  it('round-trips through adapter_config.json', () => {
    const configs = [
      new BottleneckConfig({
        placement: 'houlsby',
        reductionFactor: 8,
        nonLinearity: 'gelu',
        scaling: 'learned',
        layerNorm: 'before',
      }),
      new BottleneckConfig({
        placement: 'parallel',
        scaling: 4,
        layerNorm: 'after',
        taskType: 'SEQ_CLS',
        modulesToSave: ['classifier'],
      }),
      new BottleneckConfig({
        placement: { after: ['fc1', 'conv2'] },
        nonLinearity: 'swish',
        initWeights: 'random',
      }),
    ];
    for (const config of configs) {
      const json = JSON.parse(JSON.stringify(config.toJson()));
      expect(BottleneckConfig.fromJson(json)).toEqual(config);
    }
    expect(configs[2].toJson()).toMatchObject({ placement: 'after', target_modules: ['fc1', 'conv2'] });
    expect(configs[0].toJson()).not.toHaveProperty('target_modules');
    // A RegExp has no PEFT spelling: null asks saveAdapter for the module paths it matched.
    expect(new BottleneckConfig({ placement: { after: /fc\d/ } }).toJson().target_modules).toBeNull();
  });

  it('refuses bad values, naming the field', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ placement: 'middle' }, /"placement": "middle"/],
      [{ placement: { before: 'fc1' } }, /"placement"/],
      [{ placement: { after: [] } }, /"placement.after"/],
      [{ placement: 'pfeiffer', reductionFactor: 0 }, /"reductionFactor": 0/],
      [{ placement: 'pfeiffer', reductionFactor: NaN }, /"reductionFactor": NaN/],
      [{ placement: 'pfeiffer', nonLinearity: 'sigmoid' }, /"nonLinearity"/],
      [{ placement: 'pfeiffer', scaling: 'auto' }, /"scaling"/],
      [{ placement: 'pfeiffer', layerNorm: 'both' }, /"layerNorm"/],
      [{ placement: 'pfeiffer', initWeights: 'bert' }, /"initWeights"/],
      [{ placement: 'pfeiffer', reduction_factor: 4 }, /"reduction_factor".*not a field of BottleneckConfig/],
    ];
    for (const [options, message] of bad) {
      const make = () => new BottleneckConfig(options as never);
      expect(make).toThrow(PeftConfigError);
      expect(make).toThrow(message);
    }
  });

  it('refuses files with fields it does not implement, or of another type', () => {
    const json = new BottleneckConfig({ placement: 'houlsby' }).toJson();
    expect(() => BottleneckConfig.fromJson({ ...json, use_gating: true })).toThrow(/"use_gating"/);
    expect(() => BottleneckConfig.fromJson({ ...json, peft_type: 'LORA' })).toThrow(/peft_type/);
    expect(() => BottleneckConfig.fromJson({ ...json, target_modules: ['fc1'] })).toThrow(
      /target_modules.*absent/,
    );
  });
});
