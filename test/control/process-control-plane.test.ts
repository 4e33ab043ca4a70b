/**
 * The control plane and an agent as separate OS processes (warden-control-plane
 * and warden-agent run through tsx), over gRPC with TLS, a real git
 * repository made by the test and the real PostgreSQL: enrollment, a policy
 * enforced on a psql query, new and bad commits, agent and control-plane
 * restarts (SIGTERM and SIGKILL), refused enrollment tokens. One control
 * plane (same config, schema, key and ports across its restarts) and one
 * agent serve the cases in order, as one deployment would live through them.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRepo, type TestRepo } from '../../control-plane/src/gitops/test-support.js';
import { MIGRATIONS, migrateSchema } from '../../control-plane/src/db/migrations.js';
import { makeTestPki, type TestPki } from '../support/certs.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { freePort, type LoggedProcess } from '../support/processes.js';
import { services } from '../support/services.js';
import {
  ANALYTICS_GROUP,
  PHI_ROWS,
  apiGet,
  issueEnrollmentToken,
  phiConfigRepo,
  phiSchemaSql,
  pushWebhook,
  spawnManagedAgent,
  startControlPlaneProcess,
  waitForAgents,
  waitForReady,
  type AgentStatus,
  type ControlPlaneProcessOptions,
  type ControlPlaneProcess,
  type PhiRepoOptions,
} from '../support/control-plane-processes.js';

const run = promisify(execFile);
const id = `${process.pid}_${Date.now() % 100_000}`;
const phiSchema = `proc_phi_${id}`;
const cpSchema = `proc_cp_${id}`;
const SECRET = 'process-test-webhook-secret';
const pool = new pg.Pool({ ...services.postgres, max: 2 });
const live: LoggedProcess[] = [];

let issuer: TestIssuer;
let pki: TestPki;
let repo: TestRepo;
let work: string;
let cpOptions: ControlPlaneProcessOptions;
let cp: ControlPlaneProcess;
let agent: LoggedProcess;
let agentDir: string;
let repoOptions: PhiRepoOptions;
/** The version the agent should be enforcing: commit SHA → how ssn looks to analytics. */
let good: { sha: string; ssn: (s: string) => string };

const admin = (): Promise<string> => issuer.sign({ sub: 'dana', groups: ['platform-admins'] }, { audience: 'warden-api' });
const auditor = (): Promise<string> => issuer.sign({ sub: 'carol', groups: ['compliance'] }, { audience: 'warden-api' });
const redacted = (): string => '[REDACTED]';
const lastFour = (s: string): string => '*'.repeat(s.length - 4) + s.slice(-4);

async function startCp(): Promise<ControlPlaneProcess> {
  const p = await startControlPlaneProcess(cpOptions);
  live.push(p);
  await waitForReady(p.http);
  return p;
}

function startAgent(name: string, dir: string, token?: string): LoggedProcess {
  const p = spawnManagedAgent({ mode: 'tsx', name, stateDir: dir, controlPlane: `localhost:${cpOptions.grpcPort}`, caFile: pki.paths.caCert, ...(token ? { token } : {}) });
  live.push(p);
  return p;
}

/** psql through the agent, the OIDC token as password: the rows as psql prints them, or its error. */
async function psql(sql: string): Promise<{ ok: boolean; out: string }> {
  const token = await issuer.sign({ sub: 'analytics-bot', groups: [ANALYTICS_GROUP] });
  const conn = `host=127.0.0.1 port=${repoOptions.listenerPort} dbname=clinical user=analytics-bot sslmode=disable`;
  try {
    const { stdout } = await run('psql', [conn, '-XAt', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env: { ...process.env, PGPASSWORD: token }, timeout: 10_000 });
    return { ok: true, out: stdout };
  } catch (err) {
    return { ok: false, out: String((err as { stderr?: string }).stderr ?? err) };
  }
}

/** What analytics sees of the patients right now, checked against the version in force. */
async function expectEnforcing(version: typeof good): Promise<void> {
  const r = await psql(`SELECT id, name, ssn FROM ${phiSchema}.patients ORDER BY id`);
  expect(r).toEqual({ ok: true, out: PHI_ROWS.map((p) => `${p.id}|[REDACTED]|${version.ssn(p.ssn)}\n`).join('') });
  for (const p of PHI_ROWS) expect(r.out).not.toContain(p.name);
  const denied = await psql(`SELECT note FROM ${phiSchema}.secrets`);
  expect(denied.ok).toBe(false);
  expect(denied.out).toMatch(/ERROR: {2}.*secrets/);
  expect(denied.out).not.toContain('launch codes');
}

async function agentState(name: string): Promise<AgentStatus | undefined> {
  return (await apiGet<{ agents: AgentStatus[] }>(cp.http, '/v1/agents', await auditor())).agents.find((a) => a.name === name);
}

interface Attempt {
  sha: string;
  ok: boolean;
  diagnostics: Array<{ code: string; severity: string }>;
}

/** Waits until the control plane's latest attempt is `sha`, and returns it. */
async function waitForAttempt(sha: string): Promise<Attempt> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${cp.http}/v1/config/attempts/latest`, { headers: { authorization: `Bearer ${await auditor()}` } });
    const attempt = res.ok ? ((await res.json()) as Attempt) : undefined;
    if (attempt?.sha === sha) return attempt;
    if (Date.now() > deadline) throw new Error(`the control plane never tried ${sha}; latest: ${JSON.stringify(attempt)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function commitAndPush(files: Record<string, string>, message: string): Promise<string> {
  const sha = await repo.commit(files, message);
  const res = await pushWebhook(cp.http, SECRET, 'main', sha);
  expect(res.status).toBe(202);
  return sha;
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-proc-'));
  [issuer, pki, repo] = await Promise.all([startOidcIssuer(), makeTestPki(), makeRepo('main', path.join(work, 'config'))]);
  await pool.query(phiSchemaSql(phiSchema));
  repoOptions = { phiSchema, issuer: issuer.issuer, listenerPort: await freePort() };
  good = { sha: await repo.commit(phiConfigRepo(repoOptions), 'initial policy'), ssn: redacted };
  fs.mkdirSync(path.join(work, 'cp'));
  cpOptions = {
    mode: 'tsx',
    dir: path.join(work, 'cp'),
    repoDir: repo.dir,
    databaseSchema: cpSchema,
    issuer: issuer.issuer,
    webhookSecret: SECRET,
    httpPort: await freePort(),
    grpcPort: await freePort(),
    tls: { certFile: pki.paths.serverCert, keyFile: pki.paths.serverKey },
  };
  cp = await startCp();
  agentDir = path.join(work, 'agent-1');
}, 60_000);

afterAll(async () => {
  await Promise.all(live.map((p) => p.kill('SIGKILL')));
  await pool.query(`DROP SCHEMA IF EXISTS "${phiSchema}" CASCADE; DROP SCHEMA IF EXISTS "${cpSchema}" CASCADE; DROP SCHEMA IF EXISTS "${cpSchema}_newer" CASCADE`);
  await pool.end();
  await issuer?.close();
  await pki?.remove();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('control plane and agent as processes', () => {
  it('an agent process enrolls with a one-time token and enforces the bundle on a psql session', async () => {
    expect((await fetch(`http://127.0.0.1:${cp.http}/readyz`)).status).toBe(200);
    const token = await issueEnrollmentToken(cp.http, await admin(), { ttlSeconds: 600, labels: { site: 'east' } });
    agent = startAgent('agent-1', agentDir, token);
    await agent.waitFor(/"msg":"enrolled"/);
    const [a] = await waitForAgents(cp.http, auditor, (list) => list.some((x) => x.name === 'agent-1' && x.appliedVersion === good.sha));
    expect(a).toMatchObject({ name: 'agent-1', connected: true, appliedVersion: good.sha });
    await expectEnforcing(good);
    // The agent's log never carries the enrollment token.
    expect(agent.output()).not.toContain(token);
  });

  it('refuses a reused one-time token and an expired one; the refused processes exit 1 and enroll nothing', async () => {
    const once = await issueEnrollmentToken(cp.http, await admin(), { ttlSeconds: 600 });
    const first = startAgent('agent-once', path.join(work, 'agent-once'), once);
    await waitForAgents(cp.http, auditor, (list) => list.some((x) => x.name === 'agent-once' && x.connected));
    await first.kill('SIGTERM');
    const reused = startAgent('agent-reused', path.join(work, 'agent-reused'), once);
    const expiring = await issueEnrollmentToken(cp.http, await admin(), { ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const expired = startAgent('agent-expired', path.join(work, 'agent-expired'), expiring);
    expect(await reused.exited).toBe(1);
    expect(reused.output()).toContain('warden-agent: enrollment refused: enrollment token used');
    expect(await expired.exited).toBe(1);
    expect(expired.output()).toContain('warden-agent: enrollment refused: enrollment token expired');
    const names = (await apiGet<{ agents: AgentStatus[] }>(cp.http, '/v1/agents', await auditor())).agents.map((x) => x.name).sort();
    expect(names).toEqual(['agent-1', 'agent-once']);
    // Only admins issue tokens.
    const res = await fetch(`http://127.0.0.1:${cp.http}/v1/enrollment-tokens`, { method: 'POST', headers: { authorization: `Bearer ${await auditor()}`, 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(403);
  });

  it('a new commit reaches the agent process through the webhook', async () => {
    const files = phiConfigRepo({ ...repoOptions, ssnMask: 'partial' });
    const t0 = performance.now();
    const sha = await commitAndPush(files, 'analytics may see the last four digits of SSNs');
    await waitForAgents(cp.http, auditor, (list) => list.find((x) => x.name === 'agent-1')?.appliedVersion === sha, 10_000, 10);
    console.log(`commit → agent process acknowledged (webhook, gRPC over TLS): ${(performance.now() - t0).toFixed(0)} ms`);
    good = { sha, ssn: lastFour };
    await expectEnforcing(good);
  });

  it('rejects bad commits (schema error, dangling reference, failing policy test); the agent keeps the last good version', async () => {
    const base = phiConfigRepo({ ...repoOptions, ssnMask: 'partial' });
    const role = base['roles/analytics.yaml']!;
    const bad: Array<[string, Record<string, string>, string]> = [
      ['schema error', { 'roles/analytics.yaml': role.replace('name: analytics', 'name: analytics\n  maxRows: lots') }, 'invalid-value'],
      ['dangling reference', { 'roles/analytics.yaml': role.replace('- clinical', '- nowhere') }, 'unknown-target'],
      ['failing policy test', { 'roles/analytics.yaml': phiConfigRepo({ ...repoOptions, ssnMask: 'partial', grantSecrets: true })['roles/analytics.yaml']! }, 'policy-test-failed'],
    ];
    for (const [what, change, code] of bad) {
      expect(Object.values(change)[0], what).not.toBe(role);
      const sha = await commitAndPush({ ...base, ...change }, what);
      const attempt = await waitForAttempt(sha);
      expect(attempt, what).toMatchObject({ sha, ok: false });
      expect(attempt.diagnostics.filter((d) => d.severity === 'error').map((d) => d.code), what).toContain(code);
      expect((await apiGet<{ version: string }>(cp.http, '/v1/config/current', await auditor())).version, what).toBe(good.sha);
      expect(await agentState('agent-1'), what).toMatchObject({ connected: true, appliedVersion: good.sha });
      await expectEnforcing(good);
    }
    const metrics = await (await fetch(`http://127.0.0.1:${cp.http}/metrics`)).text();
    expect(metrics).toMatch(/^warden_config_rejected_total 3$/m);
  });

  it('control plane stopped (SIGTERM), agent restarted: the agent serves its signed cached bundle, then takes the commit made meanwhile', async () => {
    expect(await cp.kill('SIGTERM')).toBe(0);
    await expectEnforcing(good); // the running agent keeps enforcing without its control plane
    await agent.kill('SIGTERM');
    agent = startAgent('agent-1', agentDir);
    await agent.waitFor(/"msg":"serving the cached signed bundle until the control plane answers"/);
    expect(agent.output()).toContain(`"version":"${good.sha}"`);
    await expectEnforcing(good);

    // A fixed policy lands while the control plane is down; it is read at start and handed out.
    const sha = await repo.commit(phiConfigRepo({ ...repoOptions, ssnMask: 'redact' }), 'back to redacting SSNs');
    cp = await startCp();
    await waitForAgents(cp.http, auditor, (list) => list.find((x) => x.name === 'agent-1')?.appliedVersion === sha && list.find((x) => x.name === 'agent-1')!.connected);
    good = { sha, ssn: redacted };
    await expectEnforcing(good);
  }, 60_000);

  it('control plane killed (SIGKILL) with a rejected commit at the branch tip: restarted, it serves the last good bundle from the database; the agent reconnects and gets later commits', async () => {
    const base = phiConfigRepo({ ...repoOptions, ssnMask: 'redact' });
    const bad = await commitAndPush({ ...base, 'roles/analytics.yaml': base['roles/analytics.yaml']!.replace('- clinical', '- nowhere') }, 'typo');
    await waitForAttempt(bad);
    expect(await cp.kill('SIGKILL')).toBe(null);
    await expectEnforcing(good);

    cp = await startCp(); // ready at once: the last good bundle comes from PostgreSQL, the tip is still rejected
    expect((await apiGet<{ version: string }>(cp.http, '/v1/config/current', await auditor())).version).toBe(good.sha);
    expect(await waitForAttempt(bad)).toMatchObject({ ok: false });
    await waitForAgents(cp.http, auditor, (list) => list.find((x) => x.name === 'agent-1')?.connected === true);
    expect(await agentState('agent-1')).toMatchObject({ appliedVersion: good.sha });

    const sha = await commitAndPush(phiConfigRepo({ ...repoOptions, ssnMask: 'partial' }), 'last four again');
    await waitForAgents(cp.http, auditor, (list) => list.find((x) => x.name === 'agent-1')?.appliedVersion === sha, 10_000, 20);
    good = { sha, ssn: lastFour };
    await expectEnforcing(good);
  }, 60_000);

  it('a control plane refuses to start on a database migrated by a newer version, naming both versions', async () => {
    const newer = `${cpSchema}_newer`;
    const future = { id: MIGRATIONS.length + 1, description: 'from the future', sql: (t: (n: string) => string) => `CREATE TABLE ${t('future')} (id int)` };
    await migrateSchema(pool, newer, { migrations: [...MIGRATIONS, future] });
    const dir = path.join(work, 'cp-old');
    fs.mkdirSync(dir);
    const old = await startControlPlaneProcess({ ...cpOptions, dir, databaseSchema: newer, httpPort: await freePort(), grpcPort: await freePort() }).then(
      () => 'started',
      (err: Error) => err.message,
    );
    expect(old).toMatch(/exited with 1/);
    expect(old).toContain(`warden-control-plane: database schema "${newer}" is at migration ${future.id} ("from the future") but this control plane knows migrations up to ${MIGRATIONS.length}`);
  });
});
