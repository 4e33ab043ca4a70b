/**
 * The example hospital config repository (policy-examples/hipaa), made
 * runnable on this machine: targets on the local PostgreSQL, a listener on
 * a free loopback port, and — for tests that load their own copy of the PHI
 * tables — every `clinic.` table moved into a schema of the test's own.
 */
import { HOSPITAL_REPO } from '../../control-plane/src/config/example-repo.js';
import { services } from './services.js';

export interface Topology {
  /** The database behind the `clinical` (and `clinical-dev`) targets. Default: this machine's PostgreSQL. */
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  /** The agent's listener port (0: any free one). */
  listenerPort?: number;
}

export function localTopology(t: Topology = {}): Record<string, string> {
  const host = t.host ?? services.postgres.host;
  const port = t.port ?? services.postgres.port;
  const user = t.user ?? services.postgres.user;
  return {
    'targets.yaml': `apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical
  postgres: { host: ${host}, port: ${port}, database: ${t.database ?? services.postgres.database}, user: ${user} }
---
apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical-dev
  postgres: { host: ${host}, port: ${port}, database: ${t.database ?? 'postgres'}, user: ${user} }
`,
    'listeners.yaml': `apiVersion: warden.dev/v1
kind: Listener
spec:
  name: clinical-pg
  target: clinical
  address: 127.0.0.1
  port: ${t.listenerPort ?? 0}
  postgres: { allowPlaintext: true }
`,
  };
}

/** The hospital repository with its tables in `schema` instead of `clinic`. */
export function hospitalRepoIn(schema: string): Record<string, string> {
  const files = { ...HOSPITAL_REPO, ...localTopology() };
  // Policy tests name tables in regular expressions too (clinic\\.billing).
  return Object.fromEntries(Object.entries(files).map(([name, text]) => [name, text.replaceAll('clinic.', `${schema}.`).replaceAll('clinic\\\\.', `${schema}\\\\.`)]));
}
