// Tests are compiled by tsc (npm test runs the build first) and run as native ES modules, so jest
// exercises exactly the JavaScript users run, including the ESM-only execa.
export default {
  testEnvironment: 'node',
  transform: {},
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  // test/cluster runs against temporal-server on PostgreSQL: npm run test:cluster (jest.cluster.config.js)
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/dist/test/cluster/'],
  globalSetup: '<rootDir>/dist/test/helpers/global-setup.js',
  globalTeardown: '<rootDir>/dist/test/helpers/global-teardown.js',
  testTimeout: 120000,
  maxWorkers: 2,
  verbose: true,
};
