/**
 * A control-plane config for in-process tests and benchmarks: loopback
 * ports picked by the OS, the test repository, people from the test issuer,
 * and this machine's PostgreSQL under `schema` (or the embedded store when
 * no schema is given). Callers add what their case needs.
 */
import type { ControlPlaneConfig } from '../../control-plane/src/control-plane.js';
import type { Capability } from '../../control-plane/src/api/people-auth.js';
import { services } from './services.js';

export const TEST_DATABASE_URL = `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`;
export const TEST_REDIS_URL = `redis://${services.redis.host}:${services.redis.port}`;

export interface TestControlPlaneOptions {
  repoDir: string;
  issuer: string;
  signingKeyFile: string;
  /** Schema on the local PostgreSQL; without one the control plane runs on its embedded store. */
  schema?: string;
  capabilities?: Partial<Record<Capability, string[]>>;
}

export function testControlPlaneConfig(o: TestControlPlaneOptions, extra: Partial<ControlPlaneConfig> = {}): ControlPlaneConfig {
  return {
    ...(o.schema ? { databaseUrl: TEST_DATABASE_URL, databaseSchema: o.schema } : {}),
    grpc: { address: '127.0.0.1', port: 0 },
    signingKeyFile: o.signingKeyFile,
    repository: { path: o.repoDir },
    branch: 'main',
    pollIntervalMs: 60_000,
    http: { address: '127.0.0.1', port: 0 },
    people: { issuers: [{ issuer: o.issuer, audience: 'warden-api' }], capabilities: { admin: [], approver: [], auditor: [], ...o.capabilities } },
    ...extra,
  };
}
