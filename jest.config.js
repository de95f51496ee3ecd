/** jest: constructs, config validation, the safety Lambda against moto, cfn-lint on the template. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // The docs checks run in `make test-docs` (test/docs/jest.config.js), not twice.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/docs/'],
  transform: { '^.+\\.ts$': 'ts-jest' },
  globalSetup: '<rootDir>/test/support/moto-global-setup.ts',
  globalTeardown: '<rootDir>/test/support/moto-global-teardown.ts',
  testTimeout: 120000,
  // Synthesis is CPU-bound and the machine has 2 cores.
  maxWorkers: 2,
};
