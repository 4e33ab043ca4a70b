/**
 * The control plane as a whole: a real git repository, the real compiler,
 * the API on a real port, and a push webhook signed like GitHub's.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type RunningControlPlane } from './control-plane.js';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { makeRepo, removeTemps, silentLogger, tempDir, type TestRepo } from './gitops/test-support.js';
import { services } from '../../test/support/services.js';
import { startManagedAgent } from '../../agent/src/control/managed-agent.js';
import { HOSPITAL_REPO } from './config/example-repo.js';
import { startOidcIssuer, type TestIssuer } from '../../test/support/oidc-issuer.js';
import type { PolicyBundle } from '../../proto/src/index.js';
import { localTopology } from '../../test/support/hospital-repo.js';
import { testControlPlaneConfig } from '../../test/support/control-plane-config.js';
import { MIGRATIONS } from './db/migrations.js';

const LOCAL_TOPOLOGY = localTopology();

let repo: TestRepo;
let cp: RunningControlPlane;
let issuer: TestIssuer;
const bundles: PolicyBundle[] = [];

beforeAll(async () => {
  process.env.WARDEN_TEST_WEBHOOK_SECRET = 'hook-secret-for-tests';
  issuer = await startOidcIssuer();
  repo = await makeRepo();
  await repo.commit({ ...HOSPITAL_REPO, ...LOCAL_TOPOLOGY }, 'initial policy');
  cp = await startControlPlane(
    testControlPlaneConfig(
      { repoDir: repo.dir, issuer: issuer.issuer, signingKeyFile: path.join(await tempDir('warden-cp-key-'), 'signing.key'), schema: `cp_test_${process.pid}`, capabilities: { admin: ['admins'], auditor: ['auditors'] } },
      { webhookSecretRef: 'env:WARDEN_TEST_WEBHOOK_SECRET' },
    ),
    { log: silentLogger },
  );
  cp.onBundle((b) => bundles.push(b));
  for (let i = 0; i < 50 && !cp.watcher.current; i++) await new Promise((r) => setTimeout(r, 50));
});

afterAll(async () => {
  await cp?.stop();
  const p = new pg.Pool({ ...services.postgres, max: 1 });
  await p.query(`DROP SCHEMA IF EXISTS "cp_test_${process.pid}" CASCADE`);
  await p.end();
  await issuer?.close();
  await removeTemps();
});

async function push(): Promise<Response> {
  const body = JSON.stringify({ ref: 'refs/heads/main', after: 'x' });
  return fetch(`http://127.0.0.1:${cp.port}/v1/hooks/git`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-hub-signature-256': 'sha256=' + createHmac('sha256', 'hook-secret-for-tests').update(body).digest('hex'),
    },
    body,
  });
}

describe('control plane', () => {
  it('serves the first good commit and becomes ready', async () => {
    expect((await fetch(`http://127.0.0.1:${cp.port}/readyz`)).status).toBe(200);
    expect(bundles.at(-1)?.roles.map((r) => r.name)).toContain('clinical-analytics');
  });

  it('turns a pushed commit into a new bundle within a fraction of a second of the webhook', async () => {
    const role = HOSPITAL_REPO['roles/billing.yaml']!.replace('maxRows: 500', 'maxRows: 250');
    const sha = await repo.commit({ 'roles/billing.yaml': role }, 'tighten billing');
    const t0 = performance.now();
    expect((await push()).status).toBe(202);
    while (cp.watcher.current?.sha !== sha && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
    const ms = performance.now() - t0;
    expect(cp.watcher.current?.sha).toBe(sha);
    expect(bundles.at(-1)?.roles.find((r) => r.name === 'billing')?.maxRows).toBe(250);
    console.log(`commit → new bundle via webhook: ${ms.toFixed(0)} ms`);
  });

  it('keeps the last good bundle when a commit is invalid, and reports why', async () => {
    const good = cp.watcher.current!.sha;
    const bad = await repo.commit({ 'roles/billing.yaml': HOSPITAL_REPO['roles/billing.yaml']!.replace('targets: [clinical]', 'targets: [nowhere]') }, 'broken');
    await push();
    for (let i = 0; i < 100 && cp.watcher.lastAttempt?.sha !== bad; i++) await new Promise((r) => setTimeout(r, 10));
    expect(cp.watcher.current!.sha).toBe(good);
    const token = await issuer.sign({ sub: 'auditor', groups: ['auditors'] }, { audience: 'warden-api' });
    const attempt = await (await fetch(`http://127.0.0.1:${cp.port}/v1/config/attempts/latest`, { headers: { authorization: `Bearer ${token}` } })).json();
    expect(attempt).toMatchObject({ sha: bad, ok: false });
    const versions = (await (await fetch(`http://127.0.0.1:${cp.port}/v1/config/versions`, { headers: { authorization: `Bearer ${token}` } })).json()) as { versions: Array<{ version: string }> };
    expect(versions.versions[0]!.version).toBe(good);
    expect(versions.versions.map((v) => v.version)).not.toContain(bad);
    expect(versions.versions.length).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`http://127.0.0.1:${cp.port}/metrics`)).text();
    expect(metrics).toMatch(/^warden_config_rejected_total 1$/m);
    expect(metrics).toContain(`warden_config_version_info{version="${good}"} 1`);
  });

  it('takes a commit all the way to a managed agent, which enforces it', async () => {
    process.env.WARDEN_HASH_KEY = 'a-hash-key-of-sufficient-length-0123';
    const dir = await tempDir('warden-agent-state-');
    const agent = await startManagedAgent({
      address: `127.0.0.1:${cp.grpcPort}`,
      credentials: grpc.credentials.createInsecure(),
      stateDir: dir,
      log: silentLogger,
      recordingPath: path.join(dir, 'sessions.jsonl'),
      enrollment: { token: await cp.registry.createToken({ ttlMs: 60_000 }), name: 'e2e-agent' },
    });
    try {
      await agent.ready;
      expect(agent.agent!.version).toBe(cp.watcher.current!.sha);
      const role = HOSPITAL_REPO['roles/billing.yaml']!.replace('maxRows: 500', 'maxRows: 123');
      const sha = await repo.commit({ 'roles/billing.yaml': role }, 'billing cap 123');
      const acked = cp.distribution.waitForAcks(sha, 1, 5000);
      const t0 = performance.now();
      await push();
      await acked;
      console.log(`commit → agent acknowledged via webhook + gRPC: ${(performance.now() - t0).toFixed(0)} ms`);
      expect(agent.agent!.version).toBe(sha);
      const token = await issuer.sign({ sub: 'auditor', groups: ['auditors'] }, { audience: 'warden-api' });
      const listed = (await (await fetch(`http://127.0.0.1:${cp.port}/v1/agents`, { headers: { authorization: `Bearer ${token}` } })).json()) as { agents: unknown[] };
      expect(listed.agents).toEqual([expect.objectContaining({ name: 'e2e-agent', connected: true, appliedVersion: sha })]);
    } finally {
      await agent.stop();
    }
  });

  it('refuses an unsigned webhook', async () => {
    const res = await fetch(`http://127.0.0.1:${cp.port}/v1/hooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push' }, body: '{}' });
    expect(res.status).toBe(401);
  });
});

describe('control plane without a database server', () => {
  it('runs on the embedded PostgreSQL: enrollment tokens, agents and the audit chain', async () => {
    const embedded = await startControlPlane(
      testControlPlaneConfig({ repoDir: repo.dir, issuer: issuer.issuer, signingKeyFile: path.join(await tempDir('warden-cp-key-'), 'signing.key'), capabilities: { auditor: ['auditors'] } }),
      { log: silentLogger },
    );
    try {
      for (let i = 0; i < 100 && !embedded.watcher.current; i++) await new Promise((r) => setTimeout(r, 50));
      expect((await fetch(`http://127.0.0.1:${embedded.port}/readyz`)).status).toBe(200);
      const token = await embedded.registry.createToken({ ttlMs: 60_000 });
      expect(await embedded.registry.consume(token)).toEqual({});
      await embedded.audit.append([{ sessionId: 's', sessionSeq: 1, event: { type: 'statement' } }]);
      expect((await embedded.audit.verify((await import('node:crypto')).generateKeyPairSync('ed25519').publicKey)).ok).toBe(true);
    } finally {
      await embedded.stop();
    }
  }, 60_000);
});

describe('control-plane replicas', () => {
  it('two starting together on a fresh schema both come up; the schema is migrated once', async () => {
    const schema = `cp_replicas_${process.pid}`;
    const config = async () => testControlPlaneConfig({ repoDir: repo.dir, issuer: issuer.issuer, signingKeyFile: path.join(await tempDir('warden-cp-key-'), 'signing.key'), schema });
    const p = new pg.Pool({ ...services.postgres, max: 1 });
    const started = await Promise.allSettled([startControlPlane(await config(), { log: silentLogger }), startControlPlane(await config(), { log: silentLogger })]);
    const replicas = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    try {
      expect(started.filter((r) => r.status === 'rejected')).toEqual([]);
      const rows = (await p.query(`SELECT id FROM "${schema}".schema_migrations ORDER BY id`)).rows.map((r: { id: number }) => r.id);
      expect(rows).toEqual(MIGRATIONS.map((m) => m.id));
      // They share state: a token issued by one enrolls through the other.
      const token = await replicas[0]!.registry.createToken({ ttlMs: 60_000 });
      expect(await replicas[1]!.registry.consume(token)).toEqual({});
    } finally {
      await Promise.all(replicas.map((r) => r.stop()));
      await p.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await p.end();
    }
  }, 60_000);
});
