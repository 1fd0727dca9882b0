// npm run test:cluster: the tests of test/cluster against temporal-server on PostgreSQL (scripts/cluster.sh),
// kept out of `npm test` (jest.config.js ignores dist/test/cluster). The global setup brings the cluster up
// (a no-op when it runs) and the teardown brings it down again only if the setup started it.
import base from './jest.config.js';

export default {
  ...base,
  roots: ['<rootDir>/dist/test/cluster'],
  testPathIgnorePatterns: ['/node_modules/'],
  globalSetup: '<rootDir>/dist/test/cluster/global-setup.js',
  globalTeardown: '<rootDir>/dist/test/cluster/global-teardown.js',
  testTimeout: 600000,
};
