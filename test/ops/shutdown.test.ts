/**
 * Graceful shutdown, as clients and auditors see it: the agent stops
 * accepting, a statement in flight finishes within the grace period, every
 * session then gets FATAL 57P01 and a session.end record with reason
 * agent_shutdown; past the grace the running query is cancelled upstream.
 * The real entry point does the same on SIGTERM and exits 0; a managed agent
 * waits for the control plane to store the last records.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { ALL_KINDS, connectThroughAgent, directClient, startTestAgent, testAgentConfig, TARGET_NAME, TEST_GROUP } from '../support/agent-harness.js';
import { startAgentProcess } from '../support/agent-process.js';
import { readJsonl } from '../../agent/src/audit/jsonl-recorder.js';
import type { SessionEvent } from '../../agent/src/audit/events.js';
import { services } from '../support/services.js';

let issuer: TestIssuer;
let token: () => Promise<string>;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  token = () => issuer.sign({ sub: 'shutdown-bot', groups: [TEST_GROUP] });
});
afterAll(async () => {
  await issuer?.close();
});

/**
 * The first error a client receives outside a query (what pg emits when the server ends a
 * session); later ones (the socket closing after it) are expected and ignored.
 */
function nextError(c: pg.Client): Promise<Error & { code?: string }> {
  return new Promise((resolve) => c.on('error', resolve));
}

function ends(events: SessionEvent[]): Array<{ reason: string; statements: number }> {
  return events.filter((e) => e.type === 'session.end').map((e) => ({ reason: e.reason, statements: e.statements }));
}

describe('agent shutdown (in process)', () => {
  it('lets the statement in flight finish, then ends every session with 57P01 and records agent_shutdown', async () => {
    const t = await startTestAgent({ issuer: issuer.issuer });
    try {
      const idle = await connectThroughAgent(t.port, await token());
      const busy = await connectThroughAgent(t.port, await token());
      const idleError = nextError(idle);
      const busyError = nextError(busy);
      const running = busy.query('SELECT pg_sleep(0.6), 42 AS answer');
      await new Promise((r) => setTimeout(r, 150));
      const started = Date.now();
      const stopped = t.agent.stop(5000);
      // No new sessions once stopping.
      await new Promise((r) => setTimeout(r, 50));
      await expect(connectThroughAgent(t.port, await token())).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect((await running).rows[0].answer).toBe(42);
      expect(await idleError).toMatchObject({ code: '57P01', message: 'terminating connection due to administrator command' });
      expect(await busyError).toMatchObject({ code: '57P01' });
      await stopped;
      expect(Date.now() - started).toBeLessThan(3000);
      // A bundle that arrives while stopping opens no listener again.
      const { bundleFromConfig } = await import('../../agent/src/config/to-bundle.js');
      await expect(t.agent.applyBundle(bundleFromConfig(t.config, 'late'))).rejects.toThrow(/shutting down/);
      await expect(connectThroughAgent(t.port, await token())).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      const events = readJsonl(t.recordingFile);
      expect(ends(events)).toEqual([
        { reason: 'agent_shutdown', statements: 0 },
        { reason: 'agent_shutdown', statements: 1 },
      ]);
      expect(events.find((e) => e.type === 'statement')).toMatchObject({ text: 'SELECT pg_sleep(0.6), 42 AS answer', rows: 1, tag: 'SELECT 1' });
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it('past the grace period, ends the session with 57P01 and cancels the query upstream', async () => {
    const t = await startTestAgent({ issuer: issuer.issuer });
    const marker = `grace_${process.pid}_${Date.now()}`;
    try {
      const c = await connectThroughAgent(t.port, await token(), { application_name: marker });
      c.on('error', () => undefined);
      const running = c.query('SELECT pg_sleep(30)').then(() => null, (e: unknown) => e);
      await new Promise((r) => setTimeout(r, 150));
      const started = Date.now();
      await t.agent.stop(300);
      expect(await running).toMatchObject({ code: '57P01' });
      expect(Date.now() - started).toBeLessThan(2000);
      // The upstream backend is not left sleeping for 30 s.
      const d = await directClient();
      let left = 1;
      for (let i = 0; i < 40 && left > 0; i++) {
        left = (await d.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'`, [marker])).rows[0].n;
        if (left > 0) await new Promise((r) => setTimeout(r, 50));
      }
      await d.end();
      expect(left).toBe(0);
      expect(ends(readJsonl(t.recordingFile))).toEqual([{ reason: 'agent_shutdown', statements: 0 }]);
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });
});

describe('warden-agent process on SIGTERM', () => {
  it('ends sessions with 57P01, flushes the records, reports not ready meanwhile and exits 0', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-sigterm-'));
    const recording = path.join(dir, 'sessions.jsonl');
    const config = { ...testAgentConfig({ issuer: issuer.issuer }, recording), ops: { address: '127.0.0.1', port: 0 }, shutdown: { graceSeconds: 5 } };
    const proc = await startAgentProcess(config);
    try {
      expect((await fetch(`http://127.0.0.1:${proc.opsPort}/readyz`)).status).toBe(200);
      const c = await connectThroughAgent(proc.pgPort, await token());
      const err = nextError(c);
      const running = c.query('SELECT pg_sleep(0.8), 7 AS n');
      await new Promise((r) => setTimeout(r, 200));
      proc.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      // While statements drain, orchestrators are told to send no one here.
      const ready = await fetch(`http://127.0.0.1:${proc.opsPort}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'shutting down' });
      expect((await running).rows[0].n).toBe(7);
      expect(await err).toMatchObject({ code: '57P01' });
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      const events = readJsonl(recording);
      expect(ends(events)).toEqual([{ reason: 'agent_shutdown', statements: 1 }]);
      expect(proc.output()).toMatch(/"msg":"stopped; session records flushed"/);
    } finally {
      await proc.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('managed agent shutdown', () => {
  it('waits for the control plane to store the session.end record before it exits', async () => {
    const { AgentRegistry } = await import('../../control-plane/src/distribution/agent-registry.js');
    const { Distribution, startDistributionServer } = await import('../../control-plane/src/distribution/agent-service.js');
    const { SigningKey } = await import('../../control-plane/src/distribution/signing-key.js');
    const { AuditChain } = await import('../../control-plane/src/audit/hash-chain.js');
    const { startManagedAgent } = await import('../../agent/src/control/managed-agent.js');
    const { bundleFromConfig } = await import('../../agent/src/config/to-bundle.js');
    const log = pino({ level: 'silent' });
    const schema = `shutdown_cp_${process.pid}`;
    const pool = new pg.Pool({ ...services.postgres, max: 4 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-managed-stop-'));
    const registry = new AgentRegistry(pool, schema);
    await registry.migrate();
    const chain = new AuditChain(pool, schema);
    await chain.migrate();
    const dist = new Distribution(registry, SigningKey.loadOrCreate(path.join(dir, 'cp.key')), log, 1, chain);
    const config = testAgentConfig({ issuer: issuer.issuer, roles: [{ name: 'tester', targets: [TARGET_NAME], statementKinds: ALL_KINDS, defaultAction: 'allow', tables: [] }] }, 'unused.jsonl');
    dist.publish(bundleFromConfig(config, 'managed-shutdown'));
    const server = await startDistributionServer({ address: '127.0.0.1', port: 0, distribution: dist });
    try {
      const m = await startManagedAgent({
        address: `127.0.0.1:${server.port}`,
        credentials: grpc.credentials.createInsecure(),
        stateDir: path.join(dir, 'agent'),
        log,
        recordingPath: 'unused.jsonl',
        enrollment: { token: await registry.createToken({ ttlMs: 60_000 }), name: 'stopping' },
      });
      await m.ready;
      const c = await connectThroughAgent(m.agent!.addresses.get('pg')!.port, await token());
      const err = nextError(c);
      await c.query('SELECT 1 AS one');
      await m.stop(1000);
      expect(await err).toMatchObject({ code: '57P01' });
      // Stored and acknowledged before stop() returned: nothing left in the spool.
      expect(m.spool.backlog().events).toBe(0);
      const payloads = (await pool.query(`SELECT payload FROM "${schema}".audit_log ORDER BY seq`)).rows.map((r: { payload: string }) => r.payload);
      const end = payloads.find((p) => p.includes('sessionEnd'));
      expect(end).toBeDefined();
      expect(end).toMatch(/AGENT_SHUTDOWN|agent_shutdown/i);
    } finally {
      await server.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool.end();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
