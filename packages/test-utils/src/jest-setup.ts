// Loaded before every test file (see jest.preset.cjs). Importing tfjs-layers registers the
// gradients that tfjs-core alone lacks in Node.
import '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';

// Tests outside describeEachBackend run on cpu, explicitly: otherwise the first op would pick the
// highest-priority registered backend (webgpu or tensorflow, once a test file has loaded them).
// cpu initialises synchronously, so the backend is active as soon as this line returns.
void tf.setBackend('cpu');
