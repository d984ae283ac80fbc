import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  // A user's single tfjs copy is the one used.
  external: [/^@tensorflow\//, /^@tfjs-peft\//],
});
