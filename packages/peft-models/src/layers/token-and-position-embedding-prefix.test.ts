import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, expectTensorsClose } from '@tfjs-peft/test-utils';
import { TokenAndPositionEmbedding } from '../index';

describeEachBackend(
  'TokenAndPositionEmbedding prefixEmbeddings (virtual tokens before the positions)',
  () => {
    for (const positionEncoding of ['learned', 'sinusoidal'] as const) {
      it(`${positionEncoding}: prefix rows take positions 0..n-1, tokens n..; no prefix = today's output`, async () => {
        const layer = new TokenAndPositionEmbedding({
          vocabSize: 11,
          embeddingSize: 4,
          positionEncoding,
          maxPositions: 8,
          tokenScale: 2,
        });
        const ids = tf.tensor2d(
          [
            [1, 2, 3],
            [4, 5, 0],
          ],
          undefined,
          'int32',
        );
        const prefix = tf.randomNormal([2, 4]) as tf.Tensor2D;
        const plain = layer.apply(ids) as tf.Tensor;
        const withPrefix = layer.call(ids, { prefixEmbeddings: prefix }) as tf.Tensor;
        // The same as embedding the 5-token sequence [p0, p1, t0, t1, t2]: positions of the long sequence.
        const long = tf.tensor2d(
          [
            [0, 0, 1, 2, 3],
            [0, 0, 4, 5, 0],
          ],
          undefined,
          'int32',
        );
        const longOut = layer.apply(long) as tf.Tensor;
        const table = layer.getWeights()[0];
        const expected = tf.tidy(() => {
          const tokenPart = tf.mul(tf.gather(table, tf.zeros([2], 'int32')), 2);
          const positionsOfPrefix = tf.sub(
            tf.slice(longOut, [0, 0, 0], [2, 2, 4]),
            tf.expandDims(tokenPart, 0),
          );
          return tf.concat(
            [tf.add(positionsOfPrefix, tf.expandDims(prefix, 0)), tf.slice(longOut, [0, 2, 0], [2, 3, 4])],
            1,
          );
        });
        expect(withPrefix.shape).toEqual([2, 5, 4]);
        await expectTensorsClose(withPrefix, expected, 1e-6);
        const again = layer.call(ids, {}) as tf.Tensor;
        await expectTensorsClose(again, plain, 0);
        tf.dispose([ids, prefix, plain, withPrefix, long, longOut, expected, again]);
        layer.dispose();
      });
    }

    for (const positionEncoding of ['learned', 'sinusoidal'] as const) {
      it(`${positionEncoding}: positionOffset k gives the tokens positions k.. (the last rows of a longer sequence)`, async () => {
        const layer = new TokenAndPositionEmbedding({
          vocabSize: 7,
          embeddingSize: 4,
          positionEncoding,
          maxPositions: 8,
        });
        const ids = tf.tensor2d([[1, 2, 3]], undefined, 'int32');
        const long = tf.tensor2d([[6, 6, 1, 2, 3]], undefined, 'int32');
        const shifted = layer.apply(ids, { positionOffset: 2 }) as tf.Tensor;
        const tail = tf.tidy(() => tf.slice(layer.apply(long) as tf.Tensor, [0, 2, 0], [1, 3, 4]));
        await expectTensorsClose(shifted, tail, 1e-6);
        if (positionEncoding === 'learned') {
          expect(() => layer.call(ids, { positionOffset: 6 })).toThrow(
            /Sequence length 3 from position 6 exceeds maxPositions 8/,
          );
        }
        expect(() => layer.call(ids, { positionOffset: -1 })).toThrow(/non-negative integer/);
        tf.dispose([ids, long, shifted, tail]);
        layer.dispose();
      });
    }

    it('a prefix that makes the sequence longer than a learned table is refused', () => {
      const layer = new TokenAndPositionEmbedding({
        vocabSize: 5,
        embeddingSize: 2,
        positionEncoding: 'learned',
        maxPositions: 4,
      });
      const ids = tf.zeros([1, 3], 'int32');
      (layer.apply(ids) as tf.Tensor).dispose();
      const prefix = tf.zeros([2, 2]);
      expect(() => layer.call(ids, { prefixEmbeddings: prefix })).toThrow(
        /Sequence length 5 exceeds maxPositions 4/,
      );
      tf.dispose([ids, prefix]);
      layer.dispose();
    });
  },
);
