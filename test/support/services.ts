/**
 * Where the real services the suite talks to live. Every test reads its
 * endpoints from here so one environment variable moves the whole suite.
 */
export const services = {
  postgres: {
    host: process.env.WARDEN_TEST_PGHOST ?? '127.0.0.1',
    port: Number(process.env.WARDEN_TEST_PGPORT ?? 5432),
    user: process.env.WARDEN_TEST_PGUSER ?? 'postgres',
    database: process.env.WARDEN_TEST_PGDATABASE ?? 'test',
  },
  redis: {
    host: process.env.WARDEN_TEST_REDIS_HOST ?? '127.0.0.1',
    port: Number(process.env.WARDEN_TEST_REDIS_PORT ?? 6379),
  },
} as const;
