// Chromium flags for headless runs on these machines (environment.md's recipe), shared by the
// browser test runner and the browser demo's end-to-end test.
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  // Chromium only falls back to SwiftShader for WebGL without a GPU when allowed to.
  '--enable-unsafe-swiftshader',
];
