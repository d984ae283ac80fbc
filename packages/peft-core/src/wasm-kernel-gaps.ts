import * as tf from '@tensorflow/tfjs-core';

/**
 * Kernels the wasm backend lacks in tfjs 4.22 and that training needs: UnsortedSegmentSum (the
 * gradient of tf.gather, i.e. of every embedding lookup) and Conv2DBackpropFilter (the gradient of a
 * convolution's filter, e.g. LoRA's A on Conv2D). Written in TypeScript over the backend's own heap,
 * registered for 'wasm' only, and only where the backend has none of its own. Loops are plain and
 * exact; they run where there is no kernel at all.
 */
interface WasmBackendLike {
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

function unsortedSegmentSum({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const wasm = backend as unknown as WasmBackendLike;
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (attrs as { numSegments: number }).numSegments;
  const segments = tf.util.sizeFromShape(segmentIds.shape);
  const inner = tf.util.sizeFromShape(x.shape) / Math.max(segments, 1);
  const out = wasm.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  const values = wasm.typedArrayFromHeap(x);
  const ids = wasm.typedArrayFromHeap(segmentIds);
  const result = wasm.typedArrayFromHeap(out);
  result.fill(0);
  for (let i = 0; i < segments; i++) {
    const segment = ids[i];
    // Out-of-range ids are dropped, as TensorFlow's kernel does.
    if (segment < 0 || segment >= numSegments) continue;
    const from = i * inner;
    const to = segment * inner;
    for (let j = 0; j < inner; j++) result[to + j] += values[from + j];
  }
  return out;
}

function conv2dBackpropFilter({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const wasm = backend as unknown as WasmBackendLike;
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW')
    throw new Error('Conv2DBackpropFilter (wasm, tfjs-peft): only NHWC is supported');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  const {
    batchSize,
    inHeight,
    inWidth,
    inChannels,
    outHeight,
    outWidth,
    outChannels,
    strideHeight,
    strideWidth,
  } = info;
  const { filterHeight, filterWidth } = info;
  const { top, left } = info.padInfo;
  const out = wasm.makeOutput(filterShape, 'float32');
  const input = wasm.typedArrayFromHeap(x);
  const gradient = wasm.typedArrayFromHeap(dy);
  const result = wasm.typedArrayFromHeap(out);
  result.fill(0);
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < outHeight; oh++) {
      for (let ow = 0; ow < outWidth; ow++) {
        const dyOffset = ((b * outHeight + oh) * outWidth + ow) * outChannels;
        for (let fh = 0; fh < filterHeight; fh++) {
          const ih = oh * strideHeight + fh - top;
          if (ih < 0 || ih >= inHeight) continue;
          for (let fw = 0; fw < filterWidth; fw++) {
            const iw = ow * strideWidth + fw - left;
            if (iw < 0 || iw >= inWidth) continue;
            const xOffset = ((b * inHeight + ih) * inWidth + iw) * inChannels;
            const wOffset = (fh * filterWidth + fw) * inChannels * outChannels;
            for (let ci = 0; ci < inChannels; ci++) {
              const xv = input[xOffset + ci];
              if (xv === 0) continue;
              const row = wOffset + ci * outChannels;
              for (let co = 0; co < outChannels; co++) result[row + co] += xv * gradient[dyOffset + co];
            }
          }
        }
      }
    }
  }
  return out;
}

const GAPS: Array<[string, tf.KernelFunc]> = [
  ['UnsortedSegmentSum', unsortedSegmentSum as tf.KernelFunc],
  ['Conv2DBackpropFilter', conv2dBackpropFilter as tf.KernelFunc],
];

for (const [kernelName, kernelFunc] of GAPS) {
  if (!tf.getKernel(kernelName, 'wasm')) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
}

/** The kernels this module registered for wasm (for tests and docs). */
export const WASM_KERNELS_FILLED = GAPS.map(([name]) => name);
