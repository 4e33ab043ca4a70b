/**
 * Just-in-time approval end to end, for real: the example hospital policy
 * on the local PostgreSQL, two control-plane replicas sharing one database
 * and one Redis, a managed agent connected to replica A, approvers deciding
 * through replica B's API, and clients held on open connections.
 */
import net from 'node:net';
import fs from 'node:fs';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { createPublicKey, verify } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { fromBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlaneConfig, type RunningControlPlane } from '../../control-plane/src/control-plane.js';
import { makeRepo, removeTemps, silentLogger, tempDir } from '../../control-plane/src/gitops/test-support.js';
import { startManagedAgent, type ManagedAgent } from '../../agent/src/control/managed-agent.js';
import { ApprovalOutcome, ApprovalRecordSchema, approvalSignedBytes } from '../../proto/src/index.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { hospitalRepoIn } from '../support/hospital-repo.js';
import { slackSignature } from '../../control-plane/src/approvals/slack.js';
import { directClient } from '../support/agent-harness.js';
import { services } from '../support/services.js';
import { loadPhi, type PhiRows } from '../fixtures/phi/generate.js';

const PHI = `appr_${process.pid}`;
const CP_SCHEMA = `appr_cp_${process.pid}`;
const REDIS = `redis://${services.redis.host}:${services.redis.port}`;
const DB_URL = `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`;

let issuer: TestIssuer;
let cpA: RunningControlPlane;
let cpB: RunningControlPlane;
let configA: ControlPlaneConfig;
let agent: ManagedAgent;
let rows: PhiRows;
let agentPort: number;

function approvalsFile(files: Record<string, string>): Record<string, string> {
  const text = files['approvals.yaml']!
    // Two charge nurses must agree before contact details are released.
    .replace('approverGroups: [charge-nurses]\n  timeout: 5m', 'approverGroups: [charge-nurses]\n  quorum: 2\n  timeout: 5m')
    // A short timeout so the expiry case runs in seconds.
    .replace('approverGroups: [billing-leads]', 'approverGroups: [billing-leads]\n  timeout: 4s');
  // Notes are read under a time-boxed grant: one approval covers the same statement shape for a while.
  const grant = `---
apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: care-notes-grant
  match: { roles: [care-coordination], tables: [${PHI}.clinical_notes] }
  approverGroups: [charge-nurses]
  scope: grant
  grantDuration: 10m
`;
  // Analytics may read 5 rows per statement; more needs the privacy office (rule bulk-export).
  const analytics = files['roles/clinical-analytics.yaml']!.replace('maxRows: 10000', 'maxRows: 5');
  return { ...files, 'approvals.yaml': text + grant, 'roles/clinical-analytics.yaml': analytics };
}

async function cpConfig(keyFile: string, repoDir: string, grpcPort = 0): Promise<ControlPlaneConfig> {
  return {
    databaseUrl: DB_URL,
    databaseSchema: CP_SCHEMA,
    grpc: { address: '127.0.0.1', port: grpcPort },
    signingKeyFile: keyFile,
    repository: { path: repoDir },
    branch: 'main',
    pollIntervalMs: 60_000,
    http: { address: '127.0.0.1', port: 0 },
    people: {
      issuers: [{ issuer: issuer.issuer, audience: 'warden-api' }],
      capabilities: { admin: [], approver: ['charge-nurses', 'billing-leads', 'privacy-office'], auditor: ['auditors'] },
    },
    approvals: { redisUrl: REDIS, sweepMs: 200, slack: { webhookUrlRef: 'env:WARDEN_TEST_SLACK_URL', signingSecretRef: 'env:WARDEN_TEST_SLACK_SECRET', users: { U_LEAD: { subject: 'lead-1', issuer: issuer?.issuer ?? '', groups: ['billing-leads'] } } } },
  };
}

async function ready(cp: RunningControlPlane): Promise<void> {
  for (let i = 0; i < 200 && !cp.watcher.current; i++) await new Promise((r) => setTimeout(r, 25));
  if (!cp.watcher.current) throw new Error(`control plane has no bundle: ${JSON.stringify(cp.watcher.lastAttempt?.diagnostics?.slice(0, 3))}`);
}

/** Captures what the chat bot posts. */
const chatPosts: Array<Record<string, unknown>> = [];
let chatServer: import('node:http').Server;

beforeAll(async () => {
  process.env.WARDEN_HASH_KEY = 'a-hash-key-of-sufficient-length-0123';
  process.env.WARDEN_TEST_SLACK_SECRET = 'slack-signing-secret-for-tests';
  const http = await import('node:http');
  chatServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      chatPosts.push(JSON.parse(body) as Record<string, unknown>);
      res.end('ok');
    });
  });
  await new Promise<void>((r) => chatServer.listen(0, '127.0.0.1', r));
  process.env.WARDEN_TEST_SLACK_URL = `http://127.0.0.1:${(chatServer.address() as net.AddressInfo).port}/hook`;

  issuer = await startOidcIssuer();
  const direct = await directClient();
  rows = (await loadPhi(direct, { patients: 20, schema: PHI, seed: 11 })).rows;
  await direct.end();

  const repo = await makeRepo();
  const files = approvalsFile(hospitalRepoIn(PHI));
  // The hospital's IdP is this test's issuer.
  files['identity.yaml'] = files['identity.yaml']!.replaceAll('https://idp.example.org/realms/hospital', issuer.issuer);
  await repo.commit(files, 'hospital policy');
  const keyFile = path.join(await tempDir('warden-appr-key-'), 'signing.key');
  configA = await cpConfig(keyFile, repo.dir);
  cpA = await startControlPlane(configA, { log: silentLogger });
  cpB = await startControlPlane(await cpConfig(keyFile, repo.dir), { log: silentLogger });
  await ready(cpA);
  await ready(cpB);
  configA.grpc.port = cpA.grpcPort;

  const dir = await tempDir('warden-appr-agent-');
  agent = await startManagedAgent({
    address: `127.0.0.1:${cpA.grpcPort}`,
    credentials: grpc.credentials.createInsecure(),
    stateDir: dir,
    log: silentLogger,
    recordingPath: path.join(dir, 'sessions.jsonl'),
    backoff: { initialMs: 50, maxMs: 300 },
    enrollment: { token: await cpA.registry.createToken({ ttlMs: 60_000 }), name: 'approval-agent' },
  });
  await agent.ready;
  agentPort = agent.agent!.addresses.get('clinical-pg')!.port;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await cpA?.stop();
  await cpB?.stop();
  await issuer?.close();
  await new Promise((r) => chatServer?.close(r));
  const d = await directClient();
  await d.query(`DROP SCHEMA IF EXISTS "${PHI}" CASCADE; DROP SCHEMA IF EXISTS "${CP_SCHEMA}" CASCADE`);
  await d.end();
  await removeTemps();
});

/** A client through the agent as one of the example's AI agents; notices are collected. */
async function client(sub: string, group: string): Promise<pg.Client & { notices: string[] }> {
  const c = new pg.Client({ host: '127.0.0.1', port: agentPort, user: sub, database: 'clinical', password: await issuer.sign({ sub, groups: [group] }) }) as pg.Client & { notices: string[] };
  c.notices = [];
  c.on('notice', (n) => c.notices.push(n.message ?? ''));
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function person(sub: string, groups: string[]): Promise<string> {
  return issuer.sign({ sub, groups }, { audience: 'warden-api' });
}

async function api(cp: RunningControlPlane, method: string, url: string, token: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${cp.port}${url}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/**
 * Waits until the client has been told which request it waits on, and the control plane has it
 * (the notice may reach the client before the request reaches the database).
 */
async function heldRequestId(c: { notices: string[] }): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const m = c.notices.map((n) => /request (\S+) is waiting/.exec(n)?.[1]).find(Boolean);
    if (m && (await cpB.approvals.known(m))) return m;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no approval notice reached the client');
}

async function stateOf(id: string): Promise<string> {
  const { json } = await api(cpB, 'GET', `/v1/approvals/${id}`, await person('auditor-1', ['auditors']));
  return json.state as string;
}

async function waitForState(id: string, state: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await stateOf(id)) === state) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`request ${id} never became ${state} (is ${await stateOf(id)})`);
}

describe('just-in-time approval', () => {
  it('holds a request for contact details until two charge nurses approve on the other replica, then returns them unmasked', async () => {
    const announcedOnB: string[] = [];
    cpB.approvals.on('announced', (id) => announcedOnB.push(id));
    const c = await client('care-bot', 'care-coordinators');
    const patient = rows.patients[2]!;
    const query = c.query(`SELECT id, first_name, phone FROM ${PHI}.patients WHERE mrn = '${patient.mrn}'`);
    let settled = false;
    void query.then(() => (settled = true), () => (settled = true));
    const id = await heldRequestId(c);
    expect(c.notices[0]).toContain('rule care-contact-unmask');
    // Replica B heard of the request through Redis, though the agent talks to replica A.
    await expect.poll(() => announcedOnB).toContain(id);

    const pending = await api(cpB, 'GET', '/v1/approvals?state=pending', await person('nurse-1', ['charge-nurses']));
    const listed = (pending.json.approvals as Array<Record<string, unknown>>).find((a) => a.id === id)!;
    expect(listed).toMatchObject({ ruleId: 'care-contact-unmask', requester: { subject: 'care-bot' }, role: 'care-coordination', target: 'clinical' });
    expect(listed.touchedColumns).toContain(`${PHI}.patients.phone`);
    // PHI a client typed stays out of what approvers see: the statement's shape only.
    expect(listed.statement).not.toContain(patient.mrn);

    // The requester may not approve itself, and someone outside the rule's groups may not decide.
    const self = await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('care-bot', ['charge-nurses']), { decision: 'approve' });
    expect(self.status).toBe(403);
    expect(self.json.message).toMatch(/separation of duties/);
    const outsider = await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('lead-9', ['billing-leads']), { decision: 'approve' });
    expect(outsider.status).toBe(403);
    const noCapability = await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('auditor-1', ['auditors']), { decision: 'approve' });
    expect(noCapability.status).toBe(403);

    const first = await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    expect(first).toMatchObject({ status: 200, json: { state: 'pending' } });
    const again = await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    expect(again.status).toBe(409);
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);

    const t0 = performance.now();
    const second = await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-2', ['charge-nurses']), { decision: 'approve', comment: 'discharge call' });
    expect(second.json.state).toBe('approved');
    const result = await query;
    const latency = performance.now() - t0;
    console.log(`approval decision (replica B) → rows at the client (agent on replica A): ${latency.toFixed(1)} ms`);
    expect(result.rows).toEqual([{ id: String(patient.id), first_name: patient.first_name, phone: patient.phone }]);
    await c.end();

    // The signed record verifies with the published key and names both approvers.
    const keys = (await (await fetch(`http://127.0.0.1:${cpA.port}/v1/keys`)).json()) as { keys: Array<{ keyId: string; publicKeyPem: string }> };
    const signed = second.json.signedRecord as { record: string; signature: string; keyId: string };
    const pem = keys.keys.find((k) => k.keyId === signed.keyId)!.publicKeyPem;
    const recordBytes = Buffer.from(signed.record, 'base64');
    expect(verify(null, approvalSignedBytes(recordBytes), createPublicKey(pem), Buffer.from(signed.signature, 'base64'))).toBe(true);
    const record = fromBinary(ApprovalRecordSchema, recordBytes);
    expect(record).toMatchObject({ requestId: id, outcome: ApprovalOutcome.APPROVE, ruleId: 'care-contact-unmask', bundleVersion: cpA.watcher.current!.sha });
    expect(record.approvers.map((a) => a.identity?.subject)).toEqual(['nurse-1', 'nurse-2']);
    // Offline, with the CLI: the record as the API returned it verifies; one changed byte does not.
    const dir = await tempDir('warden-appr-verify-');
    fs.writeFileSync(path.join(dir, 'cp.pem'), pem);
    fs.writeFileSync(path.join(dir, 'approval.json'), JSON.stringify(second.json));
    const ok = await warden(['approvals', 'verify', path.join(dir, 'approval.json'), '--public-key', path.join(dir, 'cp.pem')]);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringContaining(`request ${id} approve`) });
    expect(ok.stdout).toContain('nurse-2');
    recordBytes[recordBytes.length - 1] = recordBytes[recordBytes.length - 1]! ^ 1;
    fs.writeFileSync(path.join(dir, 'approval.json'), JSON.stringify({ ...second.json, signedRecord: { ...signed, record: recordBytes.toString('base64') } }));
    const bad = await warden(['approvals', 'verify', path.join(dir, 'approval.json'), '--public-key', path.join(dir, 'cp.pem'), '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problem: expect.stringMatching(/signature does not verify/) });

    // The session's audit trail holds the statement (approved, with the request id) and the signed evidence.
    await expect.poll(async () => JSON.stringify(await auditEvents()), { timeout: 5000 }).toContain(id);
    const events = await auditEvents();
    expect(events.some((e) => e.approval?.requestId === id)).toBe(true);
    expect(events.some((e) => e.statement?.approvalRequestId === id && e.statement?.decision === 'STATEMENT_DECISION_APPROVED')).toBe(true);
  });

  it('denies with the approver\'s comment, and the statement never runs', async () => {
    const c = await client('billing-bot', 'billing-team');
    const query = c.query(`UPDATE ${PHI}.billing SET insurer = 'self-pay'`).catch((e: Error) => e);
    const id = await heldRequestId(c);
    // An approver uses the CLI.
    process.env.WARDEN_TEST_LEAD_TOKEN = await person('lead-1', ['billing-leads']);
    const apiFlags = ['--api', `http://127.0.0.1:${cpA.port}`, '--token', 'env:WARDEN_TEST_LEAD_TOKEN'];
    const listed = await warden(['approvals', 'list', '--state', 'pending', ...apiFlags]);
    expect(listed).toMatchObject({ code: 0, stdout: expect.stringContaining(id) });
    const denied = await warden(['approvals', 'deny', id, '--comment', 'not during month-end close', ...apiFlags]);
    expect(denied).toMatchObject({ code: 0, stdout: expect.stringContaining(`request ${id} is denied`) });
    expect(await query).toMatchObject({ code: '42501', message: expect.stringMatching(/denied by lead-1: not during month-end close/) });
    // The replica that closed it counted how long it waited.
    const metrics = await (await fetch(`http://127.0.0.1:${cpA.port}/metrics`)).text();
    expect(Number(/^warden_approval_wait_seconds_count (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    const d = await directClient();
    expect((await d.query(`SELECT count(*)::int AS n FROM ${PHI}.billing WHERE insurer = 'self-pay'`)).rows[0].n).toBe(0);
    await d.end();
    // The connection is still usable afterwards.
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await c.end();
  });

  it('expires a request nobody decides, with a clear error', async () => {
    const c = await client('billing-bot', 'billing-team');
    const t0 = performance.now();
    const err = await c.query(`UPDATE ${PHI}.billing SET insurer = 'nobody-decided'`).catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: '42501', message: expect.stringMatching(/expired|timed out/) });
    expect(performance.now() - t0).toBeGreaterThan(3500);
    await c.end();
  });

  it('withdraws the request when the client cancels, or disconnects, while held', async () => {
    const c = await client('care-bot', 'care-coordinators');
    const query = c.query(`SELECT phone FROM ${PHI}.patients WHERE id = 1`);
    const id = await heldRequestId(c);
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve) => {
      const s = net.connect(agentPort, '127.0.0.1', () => s.end(serialize.cancel(processID, secretKey)));
      s.on('close', () => resolve());
    });
    await expect(query).rejects.toMatchObject({ code: '57014' });
    await waitForState(id, 'withdrawn');
    await c.end();

    const gone = await client('care-bot', 'care-coordinators');
    void gone.query(`SELECT phone FROM ${PHI}.patients WHERE id = 2`).catch(() => undefined);
    const id2 = await heldRequestId(gone);
    (gone as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    await waitForState(id2, 'withdrawn');
  });

  it('keeps a pending request across a control-plane restart: the agent resends it and the decision still reaches the client', async () => {
    const c = await client('care-bot', 'care-coordinators');
    const query = c.query(`SELECT email FROM ${PHI}.patients WHERE id = 4`);
    const id = await heldRequestId(c);
    await cpA.stop();
    cpA = await startControlPlane(configA, { log: silentLogger });
    await ready(cpA);
    for (let i = 0; i < 100 && !cpA.distribution.connected.includes(agent.agentId); i++) await new Promise((r) => setTimeout(r, 50));
    expect(cpA.distribution.connected).toContain(agent.agentId);
    await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-3', ['charge-nurses']), { decision: 'approve' });
    expect((await query).rows).toEqual([{ email: rows.patients.find((p) => p.id === 4)!.email }]);
    await c.end();
  });
});

describe('chat bot (Slack-compatible)', () => {
  const sign = (ts: number, body: string, secret = process.env.WARDEN_TEST_SLACK_SECRET!): Record<string, string> => ({
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': slackSignature(secret, String(ts), body),
  });
  const press = (id: string, user: string, action = 'warden_approve'): string =>
    new URLSearchParams({ payload: JSON.stringify({ type: 'block_actions', user: { id: user }, actions: [{ action_id: action, value: id }] }) }).toString();
  const post = (headers: Record<string, string>, body: string): Promise<Response> => fetch(`http://127.0.0.1:${cpB.port}/v1/hooks/slack`, { method: 'POST', headers, body });

  it('posts the request with buttons; only a fresh, correctly signed press by a mapped user decides, once', async () => {
    const c = await client('billing-bot', 'billing-team');
    const query = c.query(`UPDATE ${PHI}.billing SET status = status, insurer = insurer`);
    const id = await heldRequestId(c);
    await expect.poll(() => chatPosts.some((p) => JSON.stringify(p).includes(`"value":"${id}"`)), { timeout: 3000 }).toBe(true);
    const now = Math.floor(Date.now() / 1000);

    const valid = press(id, 'U_LEAD');
    expect((await post(sign(now, valid, 'a-forged-secret'), valid)).status).toBe(401);
    const old = await post(sign(now - 600, valid), valid);
    expect(old.status).toBe(401);
    expect(((await old.json()) as { message: string }).message).toMatch(/window/);
    const stranger = press(id, 'U_STRANGER');
    expect((await post(sign(now, stranger), stranger)).status).toBe(403);
    expect(await stateOf(id)).toBe('pending');

    const ok = await post(sign(now, valid), valid);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { text: string }).text).toContain('approved');
    expect((await post(sign(now, valid), valid)).status).toBe(409);
    const { json } = await api(cpB, 'GET', `/v1/approvals/${id}`, await person('auditor-1', ['auditors']));
    expect(json.votes).toEqual([expect.objectContaining({ subject: 'lead-1', vote: 'approve', via: 'chat' })]);
    await query;
    await c.end();
  });
});

describe('approval scope', () => {
  it('binds an approval to the exact statement and parameters; a grant covers the same shape for its duration', async () => {
    const c = await client('care-bot', 'care-coordinators');
    const sql = `SELECT id FROM ${PHI}.clinical_notes WHERE id = $1`;
    const first = c.query({ text: sql, values: [1] });
    const id = await heldRequestId(c);
    const { json } = await api(cpB, 'GET', `/v1/approvals/${id}`, await person('nurse-1', ['charge-nurses']));
    // Extended protocol: the hash covers the bound value; approvers see it as the session record keeps it.
    expect(json.parameters).toEqual([expect.objectContaining({ isNull: false, masked: true })]);
    const approved = await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    expect(approved.json.state).toBe('approved');
    expect((await first).rows).toEqual([{ id: '1' }]);
    c.notices.length = 0;
    // Same shape, other value: covered by the grant, no new request.
    expect((await c.query({ text: sql, values: [2] })).rows).toEqual([{ id: '2' }]);
    expect((await c.query(`SELECT id FROM ${PHI}.clinical_notes WHERE id = 3`)).rows).toEqual([{ id: '3' }]);
    expect(c.notices).toEqual([]);
    await c.end();
  });
});

/** The `warden` CLI as a person runs it. */
function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('row limit', () => {
  it('holds a result at the role\'s row limit; approval lets the rest through, denial fails the statement', async () => {
    const d = await directClient();
    const all = (await d.query(`SELECT id, department FROM ${PHI}.encounters ORDER BY id`)).rows.map((r: { id: string; department: string }) => ({ ...r }));
    await d.end();
    expect(all.length).toBeGreaterThan(5);
    const c = await client('analytics-bot', 'ai-clinical-analytics');
    const big = c.query(`SELECT id, department FROM ${PHI}.encounters ORDER BY id`);
    const id = await heldRequestId(c);
    expect(c.notices[0]).toContain('rule bulk-export');
    await api(cpB, 'POST', `/v1/approvals/${id}/decision`, await person('privacy-1', ['privacy-office']), { decision: 'approve' });
    expect((await big).rows).toEqual(all);

    c.notices.length = 0;
    const refused = c.query({ text: `SELECT id FROM ${PHI}.encounters WHERE id > $1`, values: [0] }).catch((e: Error) => e);
    const id2 = await heldRequestId(c);
    await api(cpB, 'POST', `/v1/approvals/${id2}/decision`, await person('privacy-1', ['privacy-office']), { decision: 'deny', comment: 'use the monthly extract' });
    expect(await refused).toMatchObject({ code: '42501', message: expect.stringMatching(/5-row limit.*denied by privacy-1: use the monthly extract/) });
    // Within the limit nothing is held.
    expect((await c.query(`SELECT id FROM ${PHI}.encounters ORDER BY id LIMIT 5`)).rows).toHaveLength(5);
    await c.end();
  });
});

async function auditEvents(): Promise<Array<{ approval?: { requestId: string }; statement?: { approvalRequestId?: string; decision?: string } }>> {
  const d = await directClient();
  const r = await d.query(`SELECT payload FROM "${CP_SCHEMA}".audit_log ORDER BY seq`);
  await d.end();
  return r.rows.map((x: { payload: string }) => JSON.parse(x.payload) as never);
}

