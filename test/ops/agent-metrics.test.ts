/**
 * The agent's ops endpoint over real HTTP, after real sessions through a
 * real agent (hospital policy, synthetic PHI in the real PostgreSQL): the
 * counters match what the clients did and what the session records say;
 * readiness follows the upstream; the audit backlog follows a real spool.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentMetrics, meter } from '../../agent/src/ops/metrics.js';
import { agentReadiness, startOpsServer, type OpsServer } from '../../agent/src/ops/ops-server.js';
import { DurableSpool } from '../../agent/src/audit/durable-spool.js';
import { startPolicyWorld, type PolicyWorld } from '../policy/policy-harness.js';
import { connectThroughAgent, directClient, startTestAgent, TEST_GROUP } from '../support/agent-harness.js';
import { scrape } from '../support/prometheus.js';

const silent = pino({ level: 'silent' });
let world: PolicyWorld;
let metrics: AgentMetrics;
let ops: OpsServer;
let base: string;

beforeAll(async () => {
  metrics = new AgentMetrics();
  world = await startPolicyWorld('ops_metrics', 20, { metrics });
  ops = await startOpsServer({ address: '127.0.0.1', port: 0, metrics, readiness: agentReadiness(() => world.agent.agent), log: silent });
  base = `http://127.0.0.1:${ops.port}`;
}, 60_000);

afterAll(async () => {
  await ops?.close();
  await world?.close();
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('agent metrics', () => {
  it('count sessions, statements by decision and masked values as the clients saw them', async () => {
    const s = world.schema;
    const analytics = await world.client('analytics');
    analytics.on('error', () => undefined);
    const masked = await analytics.query(`SELECT id, mrn, first_name, dob FROM ${s}.patients ORDER BY id LIMIT 5`);
    expect(masked.rows).toHaveLength(5);
    // What the database holds for those cells: every non-null one went out masked.
    const direct = await directClient();
    const truth = await direct.query(`SELECT mrn, first_name, dob FROM ${s}.patients ORDER BY id LIMIT 5`);
    await direct.end();
    const nonNull = truth.rows.flatMap((r: Record<string, unknown>) => Object.values(r)).filter((v) => v !== null).length;
    expect(nonNull).toBeGreaterThanOrEqual(10);
    for (const [i, row] of masked.rows.entries()) expect(row.mrn).not.toBe(truth.rows[i].mrn);
    await analytics.query(`SELECT count(*) FROM ${s}.encounters`);
    await expect(analytics.query(`SELECT insurer FROM ${s}.billing`)).rejects.toMatchObject({ code: '42501' });

    const billing = await world.client('billing');
    await billing.query(`SELECT id, amount_cents FROM ${s}.billing ORDER BY id LIMIT 2`);
    await billing.end();
    const forged = world.issuer.tamper(await world.tokenFor('analytics'));
    await expect(connectThroughAgent(world.agent.port, forged)).rejects.toMatchObject({ code: '28P01' });
    await new Promise((r) => setTimeout(r, 100));

    const m = await scrape(`${base}/metrics`);
    expect(m.contentType).toMatch(/^text\/plain/);
    expect(m.value('warden_statements_total', { decision: 'mask' })).toBe(1);
    expect(m.value('warden_statements_total', { decision: 'allow' })).toBe(2);
    expect(m.value('warden_statements_total', { decision: 'deny' })).toBe(1);
    expect(m.value('warden_statements_total', { decision: 'held' })).toBe(0);
    expect(m.value('warden_statements_total', { decision: 'approved' })).toBe(0);
    expect(m.value('warden_masked_values_total')).toBe(nonNull);
    expect(m.value('warden_sessions_active')).toBe(1);
    expect(m.value('warden_sessions_total', { outcome: 'client_terminate' })).toBe(1);
    expect(m.value('warden_sessions_total', { outcome: 'refused' })).toBe(1);
    expect(m.value('warden_config_version_info', { version: world.agent.agent.version })).toBe(1);
    expect(m.value('warden_audit_unacknowledged_events')).toBe(0);
    expect(m.value('warden_approval_wait_seconds_count')).toBe(0);
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);

    // The same numbers as the session records the agent wrote.
    const events = await world.agent.events();
    const statements = events.filter((e) => e.type === 'statement');
    expect(statements.map((e) => e.decision).sort()).toEqual(['allow', 'allow', 'deny', 'mask']);
    expect(statements.reduce((n, e) => n + (e.maskedValues ?? 0), 0)).toBe(nonNull);

    await analytics.end();
    await new Promise((r) => setTimeout(r, 100));
    const after = await scrape(`${base}/metrics`);
    expect(after.value('warden_sessions_active')).toBe(0);
    expect(after.value('warden_sessions_total', { outcome: 'client_terminate' })).toBe(2);
  });

  it('count relay-only statements whose records the native relay wrote itself', async () => {
    const own = new AgentMetrics();
    const agent = await startTestAgent({ issuer: world.issuer.issuer, enforcement: 'relay-only', metrics: own, nativeRelay: true });
    try {
      const c = await connectThroughAgent(agent.port, await world.issuer.sign({ sub: 'relay-bot', groups: [TEST_GROUP] }));
      for (let i = 0; i < 3; i++) await c.query('SELECT $1::int AS n', [i]);
      await c.end();
      await agent.agent.recorder.flush();
      expect(agent.agent.nativeStatements.lines).toBe(3);
      const server = await startOpsServer({ address: '127.0.0.1', port: 0, metrics: own, readiness: agentReadiness(() => agent.agent), log: silent });
      try {
        const m = await scrape(`http://127.0.0.1:${server.port}/metrics`);
        expect(m.value('warden_statements_total', { decision: 'unchecked' })).toBe(3);
      } finally {
        await server.close();
      }
    } finally {
      await agent.stop();
    }
  });

  it('export the approval wait histogram the approvals path observes into', async () => {
    metrics.observeApprovalWait(12);
    metrics.observeApprovalWait(400);
    const m = await scrape(`${base}/metrics`);
    expect(m.value('warden_approval_wait_seconds_count')).toBe(2);
    expect(m.value('warden_approval_wait_seconds_sum')).toBe(412);
    expect(m.value('warden_approval_wait_seconds_bucket', { le: '5' })).toBe(0);
    expect(m.value('warden_approval_wait_seconds_bucket', { le: '15' })).toBe(1);
    expect(m.value('warden_approval_wait_seconds_bucket', { le: '600' })).toBe(2);
  });

  it('report the audit backlog of a real spool until the control plane acknowledges it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-spool-metrics-'));
    const own = new AgentMetrics();
    const spool = new DurableSpool({ dir });
    own.attach({ auditBacklog: () => spool.backlog() });
    const server = await startOpsServer({ address: '127.0.0.1', port: 0, metrics: own, readiness: async () => null, log: silent });
    try {
      const recorder = meter(spool, own);
      const at = new Date(Date.now() - 3000).toISOString();
      for (let i = 0; i < 3; i++) recorder.record({ type: 'statement', sessionId: 's-1', seq: i + 1, at, protocol: 'simple', text: 'SELECT 1', rows: 1, durationMs: 1, decision: 'allow' });
      await recorder.flush();
      const before = await scrape(`http://127.0.0.1:${server.port}/metrics`);
      expect(before.value('warden_audit_unacknowledged_events')).toBe(3);
      expect(before.value('warden_audit_lag_seconds')).toBeGreaterThanOrEqual(3);
      spool.ack('s-1', 3);
      const after = await scrape(`http://127.0.0.1:${server.port}/metrics`);
      expect(after.value('warden_audit_unacknowledged_events')).toBe(0);
      expect(after.value('warden_audit_lag_seconds')).toBe(0);
    } finally {
      await server.close();
      await spool.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('agent health and readiness', () => {
  it('is live and ready while the upstream accepts the agent, and says why not otherwise', async () => {
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);

    // An agent whose database is not there: live, not ready, and the reason names the target.
    const dead = await startTestAgent({ issuer: world.issuer.issuer, target: { port: await freePort(), connectTimeoutMs: 1000 } });
    const deadOps = await startOpsServer({ address: '127.0.0.1', port: 0, metrics: new AgentMetrics(), readiness: agentReadiness(() => dead.agent), log: silent });
    try {
      const url = `http://127.0.0.1:${deadOps.port}`;
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const r = await fetch(`${url}/readyz`);
      expect(r.status).toBe(503);
      expect(((await r.json()) as { status: string }).status).toMatch(/^upstream clinical: /);
      await dead.stop();
      expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ status: 'shutting down' });
    } finally {
      await deadOps.close();
    }
    // A managed agent before its first bundle.
    expect(await agentReadiness(() => null)()).toBe('no policy bundle yet');
  });
});
