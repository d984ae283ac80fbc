import type * as tfl from '@tensorflow/tfjs-layers';

export interface TrainableParameterCount {
  trainableParams: number;
  allParams: number;
  /** 100 · trainable / all. */
  trainablePercent: number;
}

/** Counts each variable once, however many layers share it. */
export function countParameters(model: tfl.LayersModel): TrainableParameterCount {
  const all = new Map<number, number>();
  const trainable = new Map<number, number>();
  for (const v of model.weights)
    all.set(
      v.id,
      v.shape.reduce<number>((a, b) => a * (b ?? 1), 1),
    );
  for (const v of model.trainableWeights) trainable.set(v.id, all.get(v.id) ?? 0);
  const sum = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const trainableParams = sum(trainable);
  const allParams = sum(all);
  return {
    trainableParams,
    allParams,
    trainablePercent: allParams ? (100 * trainableParams) / allParams : 0,
  };
}

/** Hugging Face PEFT's line: `trainable params: 1,544 || all params: 102,410 || trainable%: 1.5076`. */
export function formatTrainableParameters({
  trainableParams,
  allParams,
  trainablePercent,
}: TrainableParameterCount): string {
  const group = (n: number) => n.toLocaleString('en-US');
  return `trainable params: ${group(trainableParams)} || all params: ${group(allParams)} || trainable%: ${trainablePercent.toFixed(4)}`;
}
