/**
 * The audit trail survives a control plane killed in the middle of work:
 * the control plane runs as its own process (main.ts through tsx), a
 * managed agent serves 8 clients opening session after session, and the
 * control plane is SIGKILLed while they run, then restarted on the same
 * ports. Every statement each client ran must be in the hash chain exactly
 * once, every session whole, and the chain must verify against the control
 * plane's key.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPublicKey, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRepo } from '../../control-plane/src/gitops/test-support.js';
import { AgentRegistry } from '../../control-plane/src/distribution/agent-registry.js';
import { AuditChain } from '../../control-plane/src/audit/hash-chain.js';
import { startManagedAgent, type ManagedAgent } from '../../agent/src/control/managed-agent.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent } from '../support/agent-harness.js';
import { services } from '../support/services.js';

const pool = new pg.Pool({ ...services.postgres, max: 2 });
const schema = `cp_kill_${process.pid}`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cp-kill-'));
const log = pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' });
let issuer: TestIssuer;
let agent: ManagedAgent;
let cp: ChildProcess | undefined;
let configFile: string;
let grpcPort: number;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Starts warden-control-plane as a child process; resolves once its gRPC port accepts connections. */
async function startCp(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'control-plane/src/main.ts', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WARDEN_LOG_LEVEL: 'warn' } });
  let stderr = '';
  // Logs (pino, on stdout) and errors, kept for the failure message.
  for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-20_000); if (process.env.DBG) process.stderr.write(d); });
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`control plane exited ${child.exitCode}: ${stderr}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(grpcPort, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`control plane did not open its gRPC port: ${stderr}`);
}

beforeAll(async () => {
  issuer = await startOidcIssuer();
  const repo = await makeRepo();
  await repo.commit({
    'targets.yaml': `apiVersion: warden.dev/v1\nkind: Target\nspec:\n  name: clinical\n  postgres: { host: ${services.postgres.host}, port: ${services.postgres.port}, database: ${services.postgres.database}, user: ${services.postgres.user} }\n`,
    'listeners.yaml': `apiVersion: warden.dev/v1\nkind: Listener\nspec:\n  name: pg\n  target: clinical\n  address: 127.0.0.1\n  port: 0\n  postgres: { allowPlaintext: true }\n`,
    'identity.yaml': `apiVersion: warden.dev/v1\nkind: Identity\nspec:\n  issuers:\n    - { issuer: "${issuer.issuer}", audience: warden }\n  groupMappings:\n    - { group: load, role: loader }\n`,
    'roles/loader.yaml': `apiVersion: warden.dev/v1\nkind: Role\nspec:\n  name: loader\n  targets: [clinical]\n  statementKinds: [select, transaction, session]\n  defaultAction: allow\n  tables: []\n`,
  });
  grpcPort = await freePort();
  configFile = path.join(work, 'control-plane.yaml');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      databaseUrl: `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`,
      databaseSchema: schema,
      repository: { path: repo.dir },
      branch: 'main',
      pollIntervalMs: 60_000,
      http: { address: '127.0.0.1', port: await freePort() },
      grpc: { address: '127.0.0.1', port: grpcPort },
      signingKeyFile: path.join(work, 'signing.key'),
      people: { issuers: [{ issuer: issuer.issuer, audience: 'warden-api' }], capabilities: { admin: [], approver: [], auditor: [] } },
      audit: { checkpointIntervalMs: 500 },
    }),
  );
  cp = await startCp();
  const registry = new AgentRegistry(pool, schema);
  agent = await startManagedAgent({
    address: `127.0.0.1:${grpcPort}`,
    credentials: grpc.credentials.createInsecure(),
    stateDir: path.join(work, 'agent'),
    log,
    recordingPath: path.join(work, 'agent', 'sessions.jsonl'),
    backoff: { initialMs: 50, maxMs: 300 },
    enrollment: { token: await registry.createToken({ ttlMs: 60_000 }), name: 'kill-test' },
  });
  await agent.ready;
}, 90_000);

afterAll(async () => {
  await agent?.stop();
  cp?.kill('SIGKILL');
  await issuer?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('control plane SIGKILLed under load', () => {
  it('loses and doubles nothing: every statement once, every session whole, and the chain verifies', async () => {
    const port = agent.agent!.addresses.get('pg')!.port;
    const ran: string[] = [];
    let sessions = 0;
    let stop = false;
    const client = async (c: number): Promise<void> => {
      for (let s = 0; !stop; s++) {
        const conn = await connectThroughAgent(port, await issuer.sign({ sub: `loader-${c}`, groups: ['load'] }));
        sessions++;
        for (let q = 0; q < 10; q++) {
          const text = `SELECT 'c${c}-s${s}-q${q}' AS tag`;
          await conn.query(text);
          ran.push(text);
        }
        await conn.end();
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, (_, c) => client(c)));
    await new Promise((r) => setTimeout(r, 1500));
    const before = ran.length;
    cp!.kill('SIGKILL');
    await new Promise((r) => cp!.once('exit', r));
    // Sessions keep running on the agent's bundle while the control plane is gone; events wait in the spool.
    await new Promise((r) => setTimeout(r, 1000));
    expect(ran.length).toBeGreaterThan(before);
    expect(agent.spool.pending().length).toBeGreaterThan(0);
    cp = await startCp();
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await load;
    await new Promise((r) => setTimeout(r, 300)); // the last session ends reach the spool
    for (let i = 0; i < 200 && agent.spool.pending().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(agent.spool.pending()).toEqual([]);

    const { rows } = await pool.query(`SELECT session_id, session_seq, payload FROM "${schema}".audit_log ORDER BY seq`);
    const payloads = rows.map((r: { payload: string }) => JSON.parse(r.payload) as { statement?: { text: string }; sessionStart?: unknown; sessionEnd?: { statementCount: string } });
    const recorded = payloads.filter((p) => p.statement).map((p) => p.statement!.text);
    expect(recorded.length).toBe(ran.length);
    expect(new Set(recorded).size).toBe(recorded.length);
    expect([...recorded].sort()).toEqual([...ran].sort());
    expect(payloads.filter((p) => p.sessionStart).length).toBe(sessions);
    expect(payloads.filter((p) => p.sessionEnd).length).toBe(sessions);
    // Per session: sequences 1..n without gaps (start, 10 statements, end).
    const bySession = new Map<string, number[]>();
    for (const r of rows as Array<{ session_id: string; session_seq: string }>) bySession.set(r.session_id, [...(bySession.get(r.session_id) ?? []), Number(r.session_seq)]);
    for (const seqs of bySession.values()) expect(seqs.sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    console.log(`${sessions} sessions, ${ran.length} statements (${before} before the kill); ${rows.length} audit records, each once`);

    const key = createPrivateKey(fs.readFileSync(path.join(work, 'signing.key')));
    const chain = new AuditChain(pool, schema);
    await chain.checkpoint(key);
    const v = await chain.verify(createPublicKey(key));
    expect(v).toMatchObject({ ok: true, checked: rows.length });
    expect(v.checkpointsVerified).toBeGreaterThan(1); // the control plane's own checkpoints, before and after the kill
  }, 120_000);
});
