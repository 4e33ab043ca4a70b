/**
 * Approval on the HTTP and SSH paths, for real: a control plane with its
 * config repository (HTTP and SSH targets, roles, approval rules), a managed
 * agent enrolled with it, a real HTTP service and a real sshd as targets,
 * clients held on open requests and channels, approvers deciding through
 * the API, and the decisions and recordings found in the audit log.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/src/control-plane.js';
import { makeRepo, removeTemps, silentLogger, tempDir } from '../../control-plane/src/gitops/test-support.js';
import { startManagedAgent, type ManagedAgent } from '../../agent/src/control/managed-agent.js';
import { replayCast } from '../../agent/src/engines/ssh/record.js';
import { sessionsCommand } from '../../control-plane/src/cli/sessions.js';
import { PassThrough, type Writable } from 'node:stream';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { startSshd, type TestSshd } from '../support/sshd.js';
import { directClient } from '../support/agent-harness.js';
import { testControlPlaneConfig, TEST_DATABASE_URL, TEST_REDIS_URL } from '../support/control-plane-config.js';

const CP_SCHEMA = `sshhttp_cp_${process.pid}`;
const SCRATCH = `/tmp/warden-approval-${process.pid}`;

let issuer: TestIssuer;
let sshd: TestSshd;
let cp: RunningControlPlane;
let agent: ManagedAgent;
let upstream: http.Server;
const upstreamSaw: string[] = [];
let httpBase: string;
let sshPort: number;

function repoFiles(upstreamPort: number): Record<string, string> {
  return {
    'identity.yaml': `apiVersion: warden.dev/v1
kind: Identity
spec:
  issuers: [{ issuer: ${issuer.issuer}, audience: warden }]
  groupMappings: [{ group: lab-ops, role: lab-ops }]
`,
    'targets.yaml': `apiVersion: warden.dev/v1
kind: Target
spec:
  name: records
  http: { baseUrl: http://127.0.0.1:${upstreamPort} }
---
apiVersion: warden.dev/v1
kind: Target
spec:
  name: lab
  ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${sshd.user}, privateKeyRef: file:${sshd.agentKeyFile}, hostKeys: ["${sshd.hostPublicKey}"] }
`,
    'listeners.yaml': `apiVersion: warden.dev/v1
kind: Listener
spec: { name: records-http, target: records, address: 127.0.0.1, port: 0, http: { allowPlaintext: true } }
---
apiVersion: warden.dev/v1
kind: Listener
spec: { name: lab-ssh, target: lab, address: 127.0.0.1, port: 0, ssh: { hostKeyFile: ${sshd.listenerHostKeyFile} } }
`,
    'roles.yaml': `apiVersion: warden.dev/v1
kind: Role
spec:
  name: lab-ops
  targets: [records, lab]
  http:
    routes:
      - { id: patients, path: /api/patients/**, action: allow }
  ssh: { shell: true, exec: true }
`,
    'approvals.yaml': `apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: http-delete-patient
  match: { targets: [records], httpRoutes: ["^DELETE /api/patients/"] }
  approverGroups: [charge-nurses]
---
apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: ssh-rm
  match: { targets: [lab], sshCommands: ["^rm "] }
  approverGroups: [charge-nurses]
---
apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: ssh-shell
  match: { targets: [lab], sshShell: true }
  approverGroups: [charge-nurses]
---
apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: http-put-quick
  match: { targets: [records], httpRoutes: ["^PUT /api/patients/"] }
  approverGroups: [charge-nurses]
  timeout: 2s
`,
  };
}

beforeAll(async () => {
  issuer = await startOidcIssuer();
  sshd = await startSshd();
  upstream = http.createServer((req, res) => {
    upstreamSaw.push(`${req.method} ${req.url}`);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ done: `${req.method} ${req.url}` }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const repo = await makeRepo();
  await repo.commit(repoFiles((upstream.address() as net.AddressInfo).port), 'http and ssh targets');
  cp = await startControlPlane(
    testControlPlaneConfig(
      { repoDir: repo.dir, issuer: issuer.issuer, signingKeyFile: path.join(await tempDir('warden-sshhttp-key-'), 'signing.key'), schema: CP_SCHEMA, capabilities: { approver: ['charge-nurses'], auditor: ['auditors'] } },
      { approvals: { redisUrl: TEST_REDIS_URL, sweepMs: 200 } },
    ),
    { log: silentLogger },
  );
  for (let i = 0; i < 200 && !cp.watcher.current; i++) await new Promise((r) => setTimeout(r, 25));
  if (!cp.watcher.current) throw new Error(`control plane has no bundle: ${JSON.stringify(cp.watcher.lastAttempt?.diagnostics?.slice(0, 3))}`);
  const dir = await tempDir('warden-sshhttp-agent-');
  agent = await startManagedAgent({
    address: `127.0.0.1:${cp.grpcPort}`,
    credentials: grpc.credentials.createInsecure(),
    stateDir: dir,
    log: silentLogger,
    recordingPath: path.join(dir, 'sessions.jsonl'),
    backoff: { initialMs: 50, maxMs: 300 },
    enrollment: { token: await cp.registry.createToken({ ttlMs: 60_000 }), name: 'ssh-http-agent' },
  });
  await agent.ready;
  httpBase = `http://127.0.0.1:${agent.agent!.addresses.get('records-http')!.port}`;
  sshPort = agent.agent!.addresses.get('lab-ssh')!.port;
}, 60_000);

afterAll(async () => {
  await agent?.stop();
  await cp?.stop();
  await issuer?.close();
  await sshd?.stop();
  await new Promise((r) => upstream?.close(r));
  const d = await directClient();
  await d.query(`DROP SCHEMA IF EXISTS "${CP_SCHEMA}" CASCADE`);
  await d.end();
  await removeTemps();
});

async function person(sub: string, groups: string[]): Promise<string> {
  return issuer.sign({ sub, groups }, { audience: 'warden-api' });
}

async function api(method: string, url: string, token: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${cp.port}${url}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The pending request for this rule and statement text, once the control plane has it. */
async function pendingRequest(ruleId: string, statement: string): Promise<string> {
  const token = await person('nurse-1', ['charge-nurses']);
  for (let i = 0; i < 200; i++) {
    const { json } = await api('GET', '/v1/approvals?state=pending', token);
    const hit = (json.approvals as Array<{ id: string; ruleId: string; statement: string }>).find((a) => a.ruleId === ruleId && a.statement === statement);
    if (hit) return hit.id;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no pending request for ${ruleId}: ${statement}`);
}

async function decide(id: string, decision: 'approve' | 'deny', comment?: string): Promise<void> {
  const r = await api('POST', `/v1/approvals/${id}/decision`, await person('nurse-2', ['charge-nurses']), { decision, ...(comment ? { comment } : {}) });
  expect(r.status).toBe(200);
}

async function auditEvents(): Promise<Array<Record<string, Record<string, unknown> | undefined>>> {
  const d = await directClient();
  const r = await d.query(`SELECT payload FROM "${CP_SCHEMA}".audit_log ORDER BY seq`);
  await d.end();
  return r.rows.map((x: { payload: string }) => JSON.parse(x.payload) as never);
}

async function collect(run: (out: Writable) => Promise<number>): Promise<{ code: number; text: string }> {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  const code = await run(out);
  return { code, text };
}

function sshConnect(): Promise<ssh2.Client> {
  return issuer.sign({ sub: 'tech-7', groups: ['lab-ops'] }).then(
    (password) =>
      new Promise((resolve, reject) => {
        const c = new ssh2.Client();
        c.once('ready', () => resolve(c));
        c.once('error', reject);
        c.connect({ host: '127.0.0.1', port: sshPort, username: 'tech-7', password });
      }),
  );
}

function exec(c: ssh2.Client, command: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    c.exec(command, (err, ch) => {
      if (err) return reject(err);
      const out = { stdout: '', stderr: '', code: null as number | null };
      ch.on('data', (d: Buffer) => (out.stdout += d.toString()));
      ch.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
      ch.on('exit', (code: number | null) => (out.code = code));
      ch.on('close', () => resolve(out));
    });
  });
}

describe('approval on HTTP and SSH targets', () => {
  it('holds a risky HTTP route until an approver decides; denial is a 403 with the reason and the upstream never sees it', async () => {
    const authorization = `Bearer ${await issuer.sign({ sub: 'bot-3', groups: ['lab-ops'] })}`;
    // Routes the rule does not name pass at once.
    expect((await fetch(`${httpBase}/api/patients/7`, { headers: { authorization } })).status).toBe(200);

    const held = fetch(`${httpBase}/api/patients/7`, { method: 'DELETE', headers: { authorization } });
    const id = await pendingRequest('http-delete-patient', 'DELETE /api/patients/7');
    await new Promise((r) => setTimeout(r, 100));
    expect(upstreamSaw).not.toContain('DELETE /api/patients/7');
    await decide(id, 'approve');
    const res = await held;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ done: 'DELETE /api/patients/7' });

    const refused = fetch(`${httpBase}/api/patients/8`, { method: 'DELETE', headers: { authorization } });
    const id2 = await pendingRequest('http-delete-patient', 'DELETE /api/patients/8');
    await decide(id2, 'deny', 'not without a ticket');
    const r2 = await refused;
    expect(r2.status).toBe(403);
    expect(await r2.json()).toMatchObject({ error: 'approval_refused', approvalRequestId: id2, message: expect.stringMatching(/denied by nurse-2: not without a ticket/) });
    expect(upstreamSaw).not.toContain('DELETE /api/patients/8');

    await expect.poll(async () => JSON.stringify(await auditEvents()), { timeout: 5000 }).toContain(id2);
    const events = await auditEvents();
    expect(events.some((e) => e.statement?.approvalRequestId === id && e.statement?.decision === 'STATEMENT_DECISION_APPROVED')).toBe(true);
    expect(events.some((e) => e.approval?.requestId === id)).toBe(true);
    expect(events.some((e) => e.statement?.approvalRequestId === id2 && e.statement?.decision === 'STATEMENT_DECISION_DENY')).toBe(true);
  });

  it('holds an exec command matching a risk pattern; the client is told, approval runs it, denial refuses it', async () => {
    const c = await sshConnect();
    expect(await exec(c, `touch ${SCRATCH}-a ${SCRATCH}-b`)).toMatchObject({ code: 0 });

    const held = exec(c, `rm ${SCRATCH}-a`);
    const id = await pendingRequest('ssh-rm', `rm ${SCRATCH}-a`);
    await decide(id, 'approve');
    const ran = await held;
    expect(ran.code).toBe(0);
    expect(ran.stderr).toContain(`request ${id} is waiting for charge-nurses`);
    expect(fs.existsSync(`${SCRATCH}-a`)).toBe(false);

    const refused = exec(c, `rm ${SCRATCH}-b`);
    const id2 = await pendingRequest('ssh-rm', `rm ${SCRATCH}-b`);
    await decide(id2, 'deny', 'keep it');
    const r2 = await refused;
    expect(r2.code).toBe(126);
    expect(r2.stderr).toMatch(/denied by nurse-2: keep it/);
    expect(fs.existsSync(`${SCRATCH}-b`)).toBe(true);
    expect(await exec(c, `echo still usable`)).toMatchObject({ code: 0, stdout: 'still usable\n' });
    c.end();
    fs.rmSync(`${SCRATCH}-b`, { force: true });

    // The audit log has the approved command, its signed decision and its terminal stream (asciicast v2).
    await expect.poll(async () => JSON.stringify(await auditEvents()), { timeout: 5000 }).toContain('still usable');
    const events = await auditEvents();
    const approved = events.find((e) => e.statement?.approvalRequestId === id);
    expect(approved?.statement).toMatchObject({ text: `rm ${SCRATCH}-a`, decision: 'STATEMENT_DECISION_APPROVED', protocol: 'STATEMENT_PROTOCOL_SSH', commandTag: 'exit 0' });
    expect(events.some((e) => e.approval?.requestId === id)).toBe(true);
    const sessionId = (approved as unknown as { sessionId: string }).sessionId;
    const chunks = events.filter((e) => (e as unknown as { sessionId: string }).sessionId === sessionId && e.terminal);
    const cast = replayCast(chunks.filter((e) => e.terminal!.channel === 4).map((e) => e.terminal!.asciicast as string).join(''));
    expect(cast.header).toMatchObject({ version: 2, command: 'echo still usable' });
    expect(cast.output).toBe('still usable\n');

    // warden sessions replay writes the same recording as a .cast file, and names it in the text replay.
    const db = { 'database-url': TEST_DATABASE_URL, schema: CP_SCHEMA };
    const castFile = await collect((out) => sessionsCommand('replay', [sessionId], { ...db, cast: '4' }, 'text', out));
    expect(castFile.code).toBe(0);
    expect(replayCast(castFile.text)).toEqual(cast);
    const text = await collect((out) => sessionsCommand('replay', [sessionId], { ...db, instant: true }, 'text', out));
    expect(text.text).toContain(`rm ${SCRATCH}-a`);
    expect(text.text).toMatch(new RegExp(`terminal on channel 4: asciicast v2, \\d+ events \\(warden sessions replay ${sessionId} --cast 4`));
    expect((await collect((out) => sessionsCommand('replay', [sessionId], { ...db, cast: '9' }, 'text', out))).code).toBe(1);
  });

  it('expires an HTTP request nobody decides: 403 with the reason, nothing forwarded', async () => {
    const authorization = `Bearer ${await issuer.sign({ sub: 'bot-4', groups: ['lab-ops'] })}`;
    const t0 = performance.now();
    const res = await fetch(`${httpBase}/api/patients/9`, { method: 'PUT', headers: { authorization, 'content-type': 'application/json' }, body: '{"name":"x"}' });
    expect(performance.now() - t0).toBeGreaterThan(1500);
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: 'approval_refused', rule: 'http-put-quick', message: expect.stringMatching(/timed out|expired/) });
    expect(upstreamSaw).not.toContain('PUT /api/patients/9');
  });

  it('holds the start of an interactive shell until it is approved', async () => {
    const c = await sshConnect();
    let out = '';
    let err = '';
    const code = await new Promise<number | null>((resolve, reject) => {
      c.shell({ rows: 24, cols: 80, term: 'xterm' }, (e, ch) => {
        if (e) return reject(e);
        let exit: number | null = null;
        ch.on('data', (d: Buffer) => (out += d.toString()));
        ch.stderr.on('data', (d: Buffer) => (err += d.toString()));
        ch.on('exit', (x: number | null) => (exit = x));
        ch.on('close', () => resolve(exit));
        void (async () => {
          const id = await pendingRequest('ssh-shell', 'shell');
          await expect.poll(() => err).toContain(`request ${id} is waiting`);
          expect(out).toBe('');
          await decide(id, 'approve');
          ch.write('echo approved-shell-$((6*7))\nexit 0\n');
        })().catch(reject);
      });
    });
    c.end();
    expect(code).toBe(0);
    expect(out).toContain('approved-shell-42');
  });

  it('tells a waiting HTTP client which request it waits on (103 Early Hints)', async () => {
    const authorization = `Bearer ${await issuer.sign({ sub: 'bot-6', groups: ['lab-ops'] })}`;
    const u = new URL(httpBase);
    const hinted = new Promise<string>((resolveHint, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: '/api/patients/12', method: 'DELETE', headers: { authorization } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? undefined : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('information', (info) => {
        if (info.statusCode === 103) resolveHint(String(info.headers['warden-approval-request']));
      });
      req.on('error', reject);
      req.end();
    });
    const id = await hinted;
    expect(id).toBe(await pendingRequest('http-delete-patient', 'DELETE /api/patients/12'));
    await decide(id, 'approve');
    await expect.poll(() => upstreamSaw.includes('DELETE /api/patients/12')).toBe(true);
  });

  it('withdraws the request when the HTTP client gives up waiting', async () => {
    const authorization = `Bearer ${await issuer.sign({ sub: 'bot-5', groups: ['lab-ops'] })}`;
    const abort = new AbortController();
    const held = fetch(`${httpBase}/api/patients/11`, { method: 'DELETE', headers: { authorization }, signal: abort.signal }).catch((e: Error) => e);
    const id = await pendingRequest('http-delete-patient', 'DELETE /api/patients/11');
    abort.abort();
    expect(await held).toBeInstanceOf(Error);
    const auditor = await person('auditor-1', ['auditors']);
    await expect.poll(async () => (await api('GET', `/v1/approvals/${id}`, auditor)).json.state, { timeout: 5000 }).toBe('withdrawn');
    // An approval arriving now changes nothing: the request is gone and nothing reaches the upstream.
    const late = await api('POST', `/v1/approvals/${id}/decision`, await person('nurse-2', ['charge-nurses']), { decision: 'approve' });
    expect(late.status).toBe(409);
    expect(upstreamSaw).not.toContain('DELETE /api/patients/11');
  });
});
