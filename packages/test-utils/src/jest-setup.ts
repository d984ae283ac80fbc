// Loaded before every test file (see jest.preset.cjs). Importing tfjs-layers registers the
// gradients that tfjs-core alone lacks in Node.
import '@tensorflow/tfjs-layers';
