// Opt-in timing baseline (TFJS_PEFT_BENCHMARK=1): one forward pass and one full fine-tuning step
// (Adam, classifier head, every weight trainable) of the USE-lite layers model at batch 16 × 64
// tokens. Reports the median of a few runs after a warm-up; asserts nothing about speed.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend } from '@tfjs-peft/test-utils';
import { withClassifierHead } from '../classifier-head';
import { universalSentenceEncoderLiteFromArtifacts } from '../use-lite/load-universal-sentence-encoder-lite';
import { readUseLiteArtifacts } from './support/use-lite-files';

const BATCH = 16;
const LENGTH = 64;
const RUNS = Number(process.env.TFJS_PEFT_BENCHMARK_RUNS ?? 3);
const enabled = process.env.TFJS_PEFT_BENCHMARK === '1';

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

(enabled ? describeEachBackend : describe.skip)(
  'USE-lite timing, batch 16 × 64 tokens',
  (backend: string) => {
    it('forward pass and full fine-tuning step', async () => {
      const use = universalSentenceEncoderLiteFromArtifacts(readUseLiteArtifacts());
      const classifier = withClassifierHead(use.model, 2);
      const ids = tf.tidy(() =>
        tf.cast(tf.mul(tf.randomUniform([BATCH, LENGTH], 0, 1, 'float32', 1), 8000), 'int32'),
      );
      const mask = tf.ones([BATCH, LENGTH]);
      const labels = tf.tidy(() =>
        tf.oneHot(
          tf.tensor1d(
            Array.from({ length: BATCH }, (_, i) => i % 2),
            'int32',
          ),
          2,
        ),
      );
      const optimizer = tf.train.adam(1e-4);
      const variables = classifier.trainableWeights.map((w) => w.read() as tf.Variable);

      const forward = async () => {
        const start = performance.now();
        const out = use.model.predict([ids, mask]) as tf.Tensor;
        await out.data();
        out.dispose();
        return performance.now() - start;
      };
      const step = async () => {
        const start = performance.now();
        const loss = optimizer.minimize(
          () =>
            tf.losses.softmaxCrossEntropy(
              labels,
              classifier.apply([ids, mask], { training: true }) as tf.Tensor,
            ) as tf.Scalar,
          true,
          variables,
        ) as tf.Scalar;
        await loss.data();
        loss.dispose();
        return performance.now() - start;
      };

      await forward();
      await step();
      const forwardTimes: number[] = [];
      const stepTimes: number[] = [];
      for (let i = 0; i < RUNS; i++) forwardTimes.push(await forward());
      const before = tf.memory().numTensors;
      for (let i = 0; i < RUNS; i++) stepTimes.push(await step());
      expect(tf.memory().numTensors).toBe(before);
      console.log(
        `[benchmark] ${backend}: forward ${median(forwardTimes).toFixed(0)} ms, full fine-tuning step ${median(stepTimes).toFixed(0)} ms ` +
          `(median of ${RUNS}; forward runs ${forwardTimes.map((t) => t.toFixed(0)).join('/')}, steps ${stepTimes.map((t) => t.toFixed(0)).join('/')})`,
      );
      optimizer.dispose();
      tf.dispose([ids, mask, labels]);
      classifier.getLayer('classifier').dispose();
      use.model.dispose();
    }, 600_000);
  },
);
