/**
 * The approval tests' stack, for real: the example hospital policy on the
 * local PostgreSQL (its tables in a schema of the test file's own), two
 * control-plane replicas sharing one database and one Redis, a managed agent
 * connected to replica A, a receiver for the chat bot's webhook, and helpers
 * to act as AI agents (clients whose notices are collected) and as people.
 */
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { execFile } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { startControlPlane, type ControlPlaneConfig, type RunningControlPlane } from '../../control-plane/src/control-plane.js';
import { makeRepo, removeTemps, silentLogger, tempDir } from '../../control-plane/src/gitops/test-support.js';
import { startManagedAgent, type ManagedAgent } from '../../agent/src/control/managed-agent.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { hospitalRepoIn } from '../support/hospital-repo.js';
import { directClient } from '../support/agent-harness.js';
import { testControlPlaneConfig, TEST_REDIS_URL } from '../support/control-plane-config.js';
import { loadPhi, type PhiRows } from '../fixtures/phi/generate.js';

export const PHI = `appr_${process.pid}`;
export const CP_SCHEMA = `appr_cp_${process.pid}`;

/** Filled in before the tests run; replica A is replaced when a test restarts it. */
export interface ApprovalStack {
  issuer: TestIssuer;
  cpA: RunningControlPlane;
  cpB: RunningControlPlane;
  agent: ManagedAgent;
  rows: PhiRows;
  agentPort: number;
  /** What the chat bot posted to its webhook. */
  chatPosts: Array<Record<string, unknown>>;
  /** Stops replica A and starts it again on the same gRPC port. */
  restartA(): Promise<void>;
}

const s = { chatPosts: [] } as unknown as ApprovalStack;
let configA: ControlPlaneConfig;
let chatServer: http.Server;

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

function cpConfig(keyFile: string, repoDir: string): ControlPlaneConfig {
  return testControlPlaneConfig(
    { repoDir, issuer: s.issuer.issuer, signingKeyFile: keyFile, schema: CP_SCHEMA, capabilities: { approver: ['charge-nurses', 'billing-leads', 'privacy-office'], auditor: ['auditors'] } },
    {
      approvals: {
        redisUrl: TEST_REDIS_URL,
        sweepMs: 200,
        slack: { webhookUrlRef: 'env:WARDEN_TEST_SLACK_URL', signingSecretRef: 'env:WARDEN_TEST_SLACK_SECRET', users: { U_LEAD: { subject: 'lead-1', issuer: s.issuer.issuer, groups: ['billing-leads'] } } },
      },
    },
  );
}

async function ready(cp: RunningControlPlane): Promise<void> {
  for (let i = 0; i < 200 && !cp.watcher.current; i++) await new Promise((r) => setTimeout(r, 25));
  if (!cp.watcher.current) throw new Error(`control plane has no bundle: ${JSON.stringify(cp.watcher.lastAttempt?.diagnostics?.slice(0, 3))}`);
}

/** Starts the stack before the file's tests and takes it down after; returns it. */
export function useApprovalStack(): ApprovalStack {
  beforeAll(async () => {
    process.env.WARDEN_HASH_KEY = 'a-hash-key-of-sufficient-length-0123';
    process.env.WARDEN_TEST_SLACK_SECRET = 'slack-signing-secret-for-tests';
    chatServer = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        s.chatPosts.push(JSON.parse(body) as Record<string, unknown>);
        res.end('ok');
      });
    });
    await new Promise<void>((r) => chatServer.listen(0, '127.0.0.1', r));
    process.env.WARDEN_TEST_SLACK_URL = `http://127.0.0.1:${(chatServer.address() as net.AddressInfo).port}/hook`;

    s.issuer = await startOidcIssuer();
    const direct = await directClient();
    s.rows = (await loadPhi(direct, { patients: 20, schema: PHI, seed: 11 })).rows;
    await direct.end();

    const repo = await makeRepo();
    const files = approvalsFile(hospitalRepoIn(PHI));
    // The hospital's IdP is this test's issuer.
    files['identity.yaml'] = files['identity.yaml']!.replaceAll('https://idp.example.org/realms/hospital', s.issuer.issuer);
    await repo.commit(files, 'hospital policy');
    const keyFile = path.join(await tempDir('warden-appr-key-'), 'signing.key');
    configA = cpConfig(keyFile, repo.dir);
    s.cpA = await startControlPlane(configA, { log: silentLogger });
    s.cpB = await startControlPlane(cpConfig(keyFile, repo.dir), { log: silentLogger });
    await ready(s.cpA);
    await ready(s.cpB);
    configA.grpc.port = s.cpA.grpcPort;

    const dir = await tempDir('warden-appr-agent-');
    s.agent = await startManagedAgent({
      address: `127.0.0.1:${s.cpA.grpcPort}`,
      credentials: grpc.credentials.createInsecure(),
      stateDir: dir,
      log: silentLogger,
      recordingPath: path.join(dir, 'sessions.jsonl'),
      backoff: { initialMs: 50, maxMs: 300 },
      enrollment: { token: await s.cpA.registry.createToken({ ttlMs: 60_000 }), name: 'approval-agent' },
    });
    await s.agent.ready;
    s.agentPort = s.agent.agent!.addresses.get('clinical-pg')!.port;
  }, 60_000);

  afterAll(async () => {
    await s.agent?.stop();
    await s.cpA?.stop();
    await s.cpB?.stop();
    await s.issuer?.close();
    await new Promise((r) => chatServer?.close(r));
    const d = await directClient();
    await d.query(`DROP SCHEMA IF EXISTS "${PHI}" CASCADE; DROP SCHEMA IF EXISTS "${CP_SCHEMA}" CASCADE`);
    await d.end();
    await removeTemps();
  });

  s.restartA = async () => {
    await s.cpA.stop();
    s.cpA = await startControlPlane(configA, { log: silentLogger });
    await ready(s.cpA);
  };
  return s;
}

/** A client through the agent as one of the example's AI agents; notices are collected. */
export async function client(sub: string, group: string): Promise<pg.Client & { notices: string[] }> {
  const c = new pg.Client({ host: '127.0.0.1', port: s.agentPort, user: sub, database: 'clinical', password: await s.issuer.sign({ sub, groups: [group] }) }) as pg.Client & { notices: string[] };
  c.notices = [];
  c.on('notice', (n) => c.notices.push(n.message ?? ''));
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

export async function person(sub: string, groups: string[]): Promise<string> {
  return s.issuer.sign({ sub, groups }, { audience: 'warden-api' });
}

export async function api(cp: RunningControlPlane, method: string, url: string, token: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
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
export async function heldRequestId(c: { notices: string[] }): Promise<string> {
  for (let i = 0; i < 300; i++) {
    const m = c.notices.map((n) => /request (\S+) is waiting/.exec(n)?.[1]).find(Boolean);
    if (m && (await s.cpB.approvals.known(m))) return m;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('no approval notice reached the client');
}

export async function stateOf(id: string): Promise<string> {
  const { json } = await api(s.cpB, 'GET', `/v1/approvals/${id}`, await person('auditor-1', ['auditors']));
  return json.state as string;
}

export async function waitForState(id: string, state: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await stateOf(id)) === state) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`request ${id} never became ${state} (is ${await stateOf(id)})`);
}

/** The `warden` CLI as a person runs it. */
export function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

export async function auditEvents(): Promise<Array<{ approval?: { requestId: string }; statement?: { approvalRequestId?: string; decision?: string } }>> {
  const d = await directClient();
  const r = await d.query(`SELECT payload FROM "${CP_SCHEMA}".audit_log ORDER BY seq`);
  await d.end();
  return r.rows.map((x: { payload: string }) => JSON.parse(x.payload) as never);
}

