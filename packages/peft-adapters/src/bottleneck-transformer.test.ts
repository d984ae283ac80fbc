import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  countParameters,
  getPeftModel,
  MemoryAdapterStore,
  parseSafetensors,
  PeftModel,
} from '@tfjs-peft/core';
import { layerNames } from '@tfjs-peft/models';
import {
  describeEachBackend,
  expectTensorsClose,
  expectWeightsBitIdentical,
  snapshotWeights,
  bytesEqual,
} from '@tfjs-peft/test-utils';
import {
  adapterParams,
  disposeAll,
  encoder,
  encoderInputs,
  maxAbsDifference,
  predict,
} from './__tests__/support/models';
import { BottleneckAdapter, BottleneckConfig, type BottleneckPlacement } from './index';

function adapterLayers(model: tfl.LayersModel): BottleneckAdapter[] {
  return model.layers.filter((l): l is BottleneckAdapter => l instanceof BottleneckAdapter);
}

/** The layers feeding `name` in the adapted graph (its latest node: base layers are shared with the user's graph). */
function inboundOf(model: tfl.LayersModel, name: string): string[] {
  return model
    .getLayer(name)
    .inboundNodes.at(-1)!
    .inboundLayers.map((l) => l.name);
}

describeEachBackend('Bottleneck adapters on the peft-models transformer encoder', () => {
  describe('width 512, 2 blocks', () => {
    let base: tfl.LayersModel;
    let inputs: tf.Tensor[];
    let baseOutput: tf.Tensor;
    beforeAll(() => {
      base = encoder(512, 2, 1024);
      inputs = encoderInputs(2);
      baseOutput = predict(base, inputs);
    });
    afterAll(() => {
      tf.dispose([...inputs, baseOutput]);
      base.dispose();
    });

    it('Houlsby, factor 16: closed-form trainable count, printed as PEFT prints it', () => {
      const peft = getPeftModel(base, new BottleneckConfig({ placement: 'houlsby', reductionFactor: 16 }));
      // Two adapters per block (after attention_output and after ffn/output), bottleneck 512/16 = 32:
      // each 2·512·32 + 32 + 512 = 33,312; four of them.
      const perAdapter = adapterParams(512, 32);
      expect(perAdapter).toBe(33_312);
      const baseParams = countParameters(base).allParams;
      expect(peft.getNbTrainableParameters()).toEqual({
        trainableParams: 4 * perAdapter,
        allParams: baseParams + 4 * perAdapter,
        trainablePercent: (100 * 4 * perAdapter) / (baseParams + 4 * perAdapter),
      });
      const lines: string[] = [];
      peft.printTrainableParameters((l) => lines.push(l));
      const total = baseParams + 133_248;
      expect(lines).toEqual([
        `trainable params: 133,248 || all params: ${total.toLocaleString('en-US')} || trainable%: ${((100 * 133_248) / total).toFixed(4)}`,
      ]);
      expect(adapterLayers(peft.model).map((l) => l.name)).toEqual([
        'encoder/layer_0/attention/attention_output/adapter',
        'encoder/layer_0/ffn/output/adapter',
        'encoder/layer_1/attention/attention_output/adapter',
        'encoder/layer_1/ffn/output/adapter',
      ]);
      peft.unload();
    });

    it('Pfeiffer and parallel, factor 16: one adapter per block', () => {
      for (const placement of ['pfeiffer', 'parallel'] as const) {
        const peft = getPeftModel(base, new BottleneckConfig({ placement }));
        expect(peft.getNbTrainableParameters().trainableParams).toBe(2 * 33_312);
        peft.unload();
      }
    });

    it('a new adapter leaves the output unchanged (≤ 1e-6), for every placement', async () => {
      const placements: BottleneckPlacement[] = [
        'houlsby',
        'pfeiffer',
        'parallel',
        { after: 'intermediate' },
      ];
      for (const placement of placements) {
        const peft = getPeftModel(
          base,
          new BottleneckConfig({ placement, nonLinearity: 'gelu', layerNorm: 'before', scaling: 'learned' }),
        );
        const out = predict(peft.model, inputs);
        await expectTensorsClose(out, baseOutput, 1e-6);
        out.dispose();
        peft.unload();
      }
    });
  });

  describe('width 16', () => {
    it('Pfeiffer and Houlsby sit between the projection and the residual add', () => {
      const base = encoder(16);
      const peft = getPeftModel(base, new BottleneckConfig({ placement: 'houlsby', reductionFactor: 4 }));
      const names = layerNames.block(1);
      expect(inboundOf(peft.model, `${names.attentionOutput}/adapter`)).toEqual([names.attentionOutput]);
      expect(inboundOf(peft.model, names.attentionResidual)).toEqual([
        'encoder/layer_0/ffn/residual',
        `${names.attentionOutput}/adapter`,
      ]);
      expect(inboundOf(peft.model, `${names.output}/adapter`)).toEqual([names.output]);
      expect(inboundOf(peft.model, names.ffnResidual)).toEqual([
        names.attentionResidual,
        `${names.output}/adapter`,
      ]);
      disposeAll(peft, base);
    });

    for (const normalization of ['pre', 'post'] as const) {
      it(`parallel (${normalization}-norm) reads the feed-forward input and adds to the feed-forward output`, async () => {
        const base = encoder(16, 2, 32, normalization);
        const inputs = encoderInputs(2);
        const baseOutput = predict(base, inputs);
        const peft = getPeftModel(
          base,
          new BottleneckConfig({
            placement: 'parallel',
            reductionFactor: 4,
            initWeights: 'random',
            scaling: 2,
          }),
        );
        const names = layerNames.block(0);
        const feedForwardInput =
          normalization === 'pre' ? names.ffnLayerNorm : names.attentionOutputLayerNorm;
        expect(inboundOf(peft.model, `${names.output}/parallel_adapter`)).toEqual([
          names.output,
          feedForwardInput,
        ]);
        // The residual stream h (the feed-forward input itself for post-norm) plus the adapted feed-forward output.
        const stream = normalization === 'pre' ? names.attentionResidual : names.attentionOutputLayerNorm;
        expect(inboundOf(peft.model, names.ffnResidual)).toEqual([
          stream,
          `${names.output}/parallel_adapter`,
        ]);
        const adapted = predict(peft.model, inputs);
        expect(await maxAbsDifference(adapted, baseOutput)).toBeGreaterThan(1e-4);
        // Disabled: exactly the base model.
        const disabled = peft.withAdapterDisabled(() => predict(peft.model, inputs));
        await expectTensorsClose(disabled, baseOutput, 0);
        tf.dispose([...inputs, baseOutput, adapted, disabled]);
        disposeAll(peft, base);
      });
    }

    it('deleting a parallel adapter removes its layers and keeps the feed-forward output', async () => {
      const base = encoder(16);
      const inputs = encoderInputs(2);
      const peft = getPeftModel(
        base,
        new BottleneckConfig({ placement: 'pfeiffer', reductionFactor: 4, initWeights: 'random' }),
      );
      const pfeifferOnly = predict(peft.model, inputs);
      peft.addAdapter(
        'par',
        new BottleneckConfig({ placement: 'parallel', reductionFactor: 2, initWeights: 'random' }),
      );
      expect(adapterLayers(peft.model)).toHaveLength(4);
      peft.deleteAdapter('par');
      expect(adapterLayers(peft.model).map((l) => l.name)).toEqual([
        'encoder/layer_0/ffn/output/adapter',
        'encoder/layer_1/ffn/output/adapter',
      ]);
      const after = predict(peft.model, inputs);
      await expectTensorsClose(after, pfeifferOnly, 0);
      tf.dispose([...inputs, pfeifferOnly, after]);
      disposeAll(peft, base);
    });

    it('training with fit changes only the adapters; every base weight stays bit-identical', async () => {
      const base = encoder(16);
      const before = await snapshotWeights(base);
      const peft = getPeftModel(
        base,
        new BottleneckConfig({ placement: 'houlsby', reductionFactor: 4, layerNorm: 'before' }),
      );
      const parallel = new BottleneckConfig({
        placement: 'parallel',
        reductionFactor: 4,
        scaling: 'learned',
      });
      peft.addAdapter('parallel', parallel);
      peft.setAdapter(['default', 'parallel']);
      const adapterBefore = await snapshotWeights(peft.trainableVariables);
      const [ids, mask] = encoderInputs(4);
      const target = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 64, 1, 'float32'), [4, 16])));
      peft.model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
      const history = await peft.model.fit([ids, mask], target, {
        epochs: 8,
        batchSize: 4,
        verbose: 0,
        shuffle: false,
      });
      expect(history.history.loss[7]).toBeLessThan(history.history.loss[0] as number);
      expectWeightsBitIdentical(before, await snapshotWeights(base));
      const adapterAfter = await snapshotWeights(peft.trainableVariables);
      // 4 Houlsby adapters × 6 variables (with layer norm) + 2 parallel × 5 (with the scale).
      expect(adapterAfter).toHaveLength(34);
      const unchanged = adapterAfter.filter((w, i) => bytesEqual(w.bytes, adapterBefore[i].bytes));
      expect(unchanged.length).toBeLessThanOrEqual(4);
      peft.model.optimizer.dispose();
      tf.dispose([ids, mask, target]);
      disposeAll(peft, base);
    });

    it('save → load reproduces the outputs (Houlsby and parallel)', async () => {
      const base = encoder(16);
      const inputs = encoderInputs(2);
      for (const placement of ['houlsby', 'parallel'] as const) {
        const peft = getPeftModel(
          base,
          new BottleneckConfig({ placement, reductionFactor: 4, initWeights: 'random', layerNorm: 'after' }),
        );
        const saved = predict(peft.model, inputs);
        const store = new MemoryAdapterStore();
        await peft.saveAdapter(store);
        const config = JSON.parse(new TextDecoder().decode(store.files.get('adapter_config.json')));
        expect(config).toMatchObject({
          peft_type: 'BOTTLENECK',
          placement,
          layer_norm: 'after',
          reduction_factor: 4,
        });
        expect(config).not.toHaveProperty('target_modules');
        const keys = [...parseSafetensors(store.files.get('adapter_model.safetensors')!).tensors.keys()];
        expect(keys).toContain('base_model.model.encoder.layer_1.ffn.output.adapter_down.weight');
        expect(keys).toContain('base_model.model.encoder.layer_1.ffn.output.adapter_norm_after.bias');
        expect(keys).toHaveLength(placement === 'houlsby' ? 4 * 6 : 2 * 6);
        peft.unload();
        const reloaded = await PeftModel.fromPretrained(base, store);
        const out = predict(reloaded.model, inputs);
        await expectTensorsClose(out, saved, 1e-6);
        tf.dispose([saved, out]);
        reloaded.unload();
      }
      tf.dispose(inputs);
      base.dispose();
    });
  });
});
