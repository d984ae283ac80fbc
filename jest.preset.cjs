// Shared jest settings: sources are read through the `@tfjs-peft/source` export condition,
// so tests across packages need no build.
module.exports = {
  testEnvironment: 'node',
  testEnvironmentOptions: { customExportConditions: ['@tfjs-peft/source', 'node', 'require', 'default'] },
  transform: { '^.+\\.(t|j)sx?$': ['@swc/jest', { jsc: { target: 'es2020', parser: { syntax: 'typescript' } } }] },
  testMatch: ['<rootDir>/src/**/*.test.ts'],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json', 'node'],
  testTimeout: 120000,
  setupFilesAfterEnv: [require.resolve('./packages/test-utils/src/jest-setup.ts')],
};
