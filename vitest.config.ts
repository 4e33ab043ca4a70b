import { defineConfig } from 'vitest/config';

/** The protocol and robustness suites run a second time with relay-only agents: through the native relay. */
const NATIVE_RELAY_SUITES = ['test/postgres/relay.test.ts', 'test/postgres/robustness.test.ts', 'test/postgres/psql.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'all', include: ['agent/src/**/*.test.ts', 'control-plane/src/**/*.test.ts', 'test/**/*.test.ts'] },
      },
      {
        extends: true,
        test: { name: 'native-relay', include: NATIVE_RELAY_SUITES, env: { WARDEN_TEST_ENFORCEMENT: 'relay-only' } },
      },
    ],
  },
});
