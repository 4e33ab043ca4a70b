/**
 * The example hospital config repository (policy-examples/hipaa), made
 * runnable on this machine: targets on the local PostgreSQL, a listener on
 * a free loopback port, and — for tests that load their own copy of the PHI
 * tables — every `clinic.` table moved into a schema of the test's own.
 */
import { HOSPITAL_REPO } from '../../control-plane/src/config/example-repo.js';
import { services } from './services.js';

export function localTopology(): Record<string, string> {
  return {
    'targets.yaml': `apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical
  postgres: { host: ${services.postgres.host}, port: ${services.postgres.port}, database: ${services.postgres.database}, user: ${services.postgres.user} }
---
apiVersion: warden.dev/v1
kind: Target
spec:
  name: clinical-dev
  postgres: { host: ${services.postgres.host}, port: ${services.postgres.port}, database: postgres, user: ${services.postgres.user} }
`,
    'listeners.yaml': `apiVersion: warden.dev/v1
kind: Listener
spec:
  name: clinical-pg
  target: clinical
  address: 127.0.0.1
  port: 0
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
