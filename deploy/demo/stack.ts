/**
 * The whole Warden stack in one process, on embedded defaults: an OIDC
 * issuer, the patient database (PGlite), a git config repository made from
 * policy-examples/hipaa, the control plane on its embedded store, and one
 * managed agent enrolled with a one-time token. Nothing here is a stand-in:
 * tokens are signed JWTs, bundles are signed and sent over gRPC, statements
 * go through the agent's real data path.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { pino, type Logger } from 'pino';
import { startOidcIssuer, type TestIssuer } from '../../test/support/oidc-issuer.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/src/control-plane.js';
import { startManagedAgent, type ManagedAgent } from '../../agent/src/control/managed-agent.js';
import { makeRepo } from '../../control-plane/src/gitops/test-support.js';
import { HOSPITAL_REPO } from '../../control-plane/src/config/example-repo.js';
import { startPhiDatabase, type PhiDatabase } from './phi-database.js';
import { localTopology } from '../../test/support/hospital-repo.js';

export const SCHEMA = 'clinic';

/** The demo's machine identities (client-credentials clients of the embedded issuer). */
export const CLIENTS = [
  { clientId: 'clinical-analytics-bot', clientSecret: 'demo-analytics-secret', groups: ['ai-clinical-analytics'], audience: 'warden' },
  { clientId: 'care-coordination-bot', clientSecret: 'demo-care-secret', groups: ['care-coordinators'], audience: 'warden' },
];

export interface DemoStack {
  dir: string;
  issuer: TestIssuer;
  phi: PhiDatabase;
  cp: RunningControlPlane;
  agent: ManagedAgent;
  /** Where AI agents connect. */
  port: number;
  stop(): Promise<void>;
}

/** policy-examples/hipaa, pointed at the demo's database, issuer and port. */
function demoRepo(phi: PhiDatabase, issuer: string, port: number): Record<string, string> {
  return {
    ...HOSPITAL_REPO,
    ...localTopology({ host: phi.host, port: phi.port, database: 'postgres', user: 'postgres', listenerPort: port }),
    'identity.yaml': HOSPITAL_REPO['identity.yaml']!.replaceAll('https://idp.example.org/realms/hospital', issuer),
  };
}

export async function startDemoStack(opts: { port: number; patients?: number; log?: Logger; progress?: (s: string) => void }): Promise<DemoStack> {
  const progress = opts.progress ?? (() => undefined);
  const log = opts.log ?? pino({ level: 'warn' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-'));
  // The masking key for tokenised identifiers; a demo value, never a production one.
  process.env.WARDEN_HASH_KEY ??= 'warden-demo-hash-key-not-for-production';
  progress('starting the OIDC issuer');
  const issuer = await startOidcIssuer({ clients: CLIENTS, tokenLifetimeSeconds: 3600 });
  progress(`loading ${opts.patients ?? 500} synthetic patients into the embedded PostgreSQL (PGlite)`);
  const phi = await startPhiDatabase({ patients: opts.patients ?? 500, schema: SCHEMA });
  progress('committing policy-examples/hipaa to a local git repository');
  const repo = await makeRepo('main', path.join(dir, 'config'));
  await repo.commit(demoRepo(phi, issuer.issuer, opts.port), 'hospital access policy');
  progress('starting the control plane (embedded store)');
  const cp = await startControlPlane(
    {
      embeddedDataDir: path.join(dir, 'control-plane-db'),
      grpc: { address: '127.0.0.1', port: 0 },
      signingKeyFile: path.join(dir, 'control-plane', 'signing.key'),
      repository: { path: repo.dir },
      branch: 'main',
      pollIntervalMs: 2000,
      http: { address: '127.0.0.1', port: Number(process.env.WARDEN_DEMO_API_PORT ?? 0) },
      people: {
        issuers: [{ issuer: issuer.issuer, audience: 'warden-api' }],
        capabilities: { admin: ['platform-admins'], approver: ['charge-nurses', 'privacy-office', 'billing-leads', 'dba-leads'], auditor: ['compliance'] },
      },
    },
    { log, baseDir: dir },
  );
  for (let i = 0; i < 400 && !cp.watcher.current; i++) await new Promise((r) => setTimeout(r, 25));
  if (!cp.watcher.current) throw new Error(`the example policy did not compile: ${JSON.stringify(cp.watcher.lastAttempt?.diagnostics?.slice(0, 3))}`);
  progress('enrolling an agent with a one-time token; it dials out over gRPC and receives the signed bundle');
  const agent = await startManagedAgent({
    address: `127.0.0.1:${cp.grpcPort}`,
    credentials: grpc.credentials.createInsecure(),
    stateDir: path.join(dir, 'agent'),
    log,
    recordingPath: path.join(dir, 'agent', 'sessions.jsonl'),
    enrollment: { token: await cp.registry.createToken({ ttlMs: 60_000 }), name: 'demo-agent', labels: { site: 'east' } },
  });
  await agent.ready;
  const port = agent.agent!.addresses.get('clinical-pg')!.port;
  return {
    dir,
    issuer,
    phi,
    cp,
    agent,
    port,
    async stop() {
      await agent.stop();
      await cp.stop();
      await phi.stop();
      await issuer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
