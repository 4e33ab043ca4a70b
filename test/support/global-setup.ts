import net from 'node:net';
import { services } from './services.js';

/** Resolves when something accepts TCP connections at host:port, rejects after timeoutMs. */
function reachable(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * The suite runs against real services only. If one is missing we stop at once
 * with one line that names the variable to set, rather than skipping tests.
 */
export default async function setup(): Promise<void> {
  const { postgres, redis } = services;
  if (!(await reachable(postgres.host, postgres.port))) {
    throw new Error(
      `PostgreSQL is not reachable at ${postgres.host}:${postgres.port}; start it or set WARDEN_TEST_PGHOST/WARDEN_TEST_PGPORT`,
    );
  }
  if (!(await reachable(redis.host, redis.port))) {
    throw new Error(
      `Redis is not reachable at ${redis.host}:${redis.port}; start it or set WARDEN_TEST_REDIS_HOST/WARDEN_TEST_REDIS_PORT`,
    );
  }
}
