// Entry of the self-contained bench worker (build.mjs bundles it with every JS dependency inlined),
// for a machine with no node_modules: the GPU machine. The webgpu and cpu backend packages are
// compiled in, and loaded only when useBackend asks (webgpu registers itself only once Dawn has
// installed navigator.gpu). Usage: node bench-worker.mjs '<WorkerRequest JSON>' (see ../src/types.ts).
import { registerBundledBackendPackage } from '../src/backends';

registerBundledBackendPackage(
  '@tensorflow/tfjs-backend-webgpu',
  () => import('@tensorflow/tfjs-backend-webgpu'),
);
registerBundledBackendPackage('@tensorflow/tfjs-backend-cpu', () => import('@tensorflow/tfjs-backend-cpu'));
await import('../src/worker');
