/**
 * The API against a real git repository compiled by the real compiler and
 * people authenticated with real tokens from an in-process OIDC issuer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApi } from './server.js';
import { TokenVerifier } from '../../../agent/src/identity/index.js';
import { startOidcIssuer, type TestIssuer } from '../../../test/support/oidc-issuer.js';
import { RepoSource, RepoWatcher, configCompiler } from '../gitops/index.js';
import { makeRepo, removeTemps, silentLogger, type TestRepo } from '../gitops/test-support.js';
import { HOSPITAL_REPO } from '../config/example-repo.js';

const exampleFiles = (): Record<string, string> => ({ ...HOSPITAL_REPO });

let issuer: TestIssuer;
let repo: TestRepo;
let watcher: RepoWatcher<unknown>;
let api: FastifyInstance;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  repo = await makeRepo();
  watcher = new RepoWatcher({ source: new RepoSource({ kind: 'local', dir: repo.dir }), branch: 'main', intervalMs: 60_000, compile: configCompiler(), logger: silentLogger }) as RepoWatcher<unknown>;
  api = await buildApi({
    people: { verifier: new TokenVerifier([{ issuer: issuer.issuer, audience: 'warden-api' }]), capabilities: { admin: ['platform-admins'], approver: ['approvers'], auditor: ['compliance'] } },
    health: { ready: () => watcher.current !== undefined },
    config: { current: () => watcher.current, lastAttempt: () => watcher.lastAttempt },
    agents: { list: async () => [{ id: 'a-1', name: 'db-east-1', labels: { site: 'east' }, connected: true, appliedVersion: watcher.current?.sha, enrolledAt: new Date(0).toISOString() }] },
  });
});

afterAll(async () => {
  await api?.close();
  watcher?.stop();
  await issuer?.close();
  await removeTemps();
});

const auditor = () => issuer.sign({ sub: 'carol', groups: ['compliance'] }, { audience: 'warden-api' });

describe('control-plane API', () => {
  it('is not ready until a valid commit exists, then serves its version to auditors', async () => {
    expect((await api.inject({ url: '/readyz' })).statusCode).toBe(503);
    const sha = await repo.commit(exampleFiles(), 'initial hospital policy');
    await watcher.triggerNow();
    expect((await api.inject({ url: '/readyz' })).statusCode).toBe(200);
    const res = await api.inject({ url: '/v1/config/current', headers: { authorization: `Bearer ${await auditor()}` } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ version: sha, message: 'initial hospital policy\n', author: { name: 'Dana Privacy' } });
  });

  it('exposes a rejected commit with its diagnostics while the last good version stays current', async () => {
    const good = watcher.current!.sha;
    const bad = await repo.commit({ 'listeners.yaml': exampleFiles()['listeners.yaml']!.replace('target: clinical\n', 'target: nowhere\n') }, 'typo');
    await watcher.triggerNow();
    const h = { authorization: `Bearer ${await auditor()}` };
    const attempt = (await api.inject({ url: '/v1/config/attempts/latest', headers: h })).json();
    expect(attempt).toMatchObject({ sha: bad, ok: false });
    expect(attempt.diagnostics.some((d: { file: string; message: string }) => d.file === 'listeners.yaml' && /nowhere/.test(d.message))).toBe(true);
    expect((await api.inject({ url: '/v1/config/current', headers: h })).json().version).toBe(good);
  });

  it('authenticates people with OIDC tokens and authorises by capability', async () => {
    expect((await api.inject({ url: '/v1/agents' })).statusCode).toBe(401);
    const forged = issuer.tamper(await auditor());
    expect((await api.inject({ url: '/v1/agents', headers: { authorization: `Bearer ${forged}` } })).statusCode).toBe(401);
    const wrongAudience = await issuer.sign({ sub: 'carol', groups: ['compliance'] }, { audience: 'warden' });
    expect((await api.inject({ url: '/v1/agents', headers: { authorization: `Bearer ${wrongAudience}` } })).statusCode).toBe(401);
    const nobody = await issuer.sign({ sub: 'dave', groups: ['interns'] }, { audience: 'warden-api' });
    const denied = await api.inject({ url: '/v1/agents', headers: { authorization: `Bearer ${nobody}` } });
    expect(denied.statusCode).toBe(403);
    expect(denied.json().message).toMatch(/auditor/);
    const ok = await api.inject({ url: '/v1/agents', headers: { authorization: `Bearer ${await auditor()}` } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().agents[0]).toMatchObject({ name: 'db-east-1', connected: true });
  });

  it('publishes an OpenAPI document describing every route', async () => {
    const doc = (await api.inject({ url: '/openapi.json' })).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/healthz', '/readyz', '/v1/config/current', '/v1/config/attempts/latest', '/v1/agents']));
  });
});
