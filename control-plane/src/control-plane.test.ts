/**
 * The control plane as a whole: a real git repository, the real compiler,
 * the API on a real port, and a push webhook signed like GitHub's.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type RunningControlPlane } from './control-plane.js';
import { makeRepo, removeTemps, silentLogger, type TestRepo } from './gitops/test-support.js';
import { HOSPITAL_REPO } from './config/example-repo.js';
import { startOidcIssuer, type TestIssuer } from '../../test/support/oidc-issuer.js';
import type { PolicyBundle } from '../../proto/src/index.js';

let repo: TestRepo;
let cp: RunningControlPlane;
let issuer: TestIssuer;
const bundles: PolicyBundle[] = [];

beforeAll(async () => {
  process.env.WARDEN_TEST_WEBHOOK_SECRET = 'hook-secret-for-tests';
  issuer = await startOidcIssuer();
  repo = await makeRepo();
  await repo.commit({ ...HOSPITAL_REPO }, 'initial policy');
  cp = await startControlPlane(
    {
      repository: { path: repo.dir },
      branch: 'main',
      pollIntervalMs: 60_000,
      webhookSecretRef: 'env:WARDEN_TEST_WEBHOOK_SECRET',
      http: { address: '127.0.0.1', port: 0 },
      people: { issuers: [{ issuer: issuer.issuer, audience: 'warden-api' }], capabilities: { admin: ['admins'], approver: [], auditor: ['auditors'] } },
    },
    { log: silentLogger },
  );
  cp.onBundle((b) => bundles.push(b));
  for (let i = 0; i < 50 && !cp.watcher.current; i++) await new Promise((r) => setTimeout(r, 50));
});

afterAll(async () => {
  await cp?.stop();
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
  });

  it('refuses an unsigned webhook', async () => {
    const res = await fetch(`http://127.0.0.1:${cp.port}/v1/hooks/git`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'push' }, body: '{}' });
    expect(res.status).toBe(401);
  });
});
