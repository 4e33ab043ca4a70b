/**
 * Control plane → agents over gRPC, for real: enrollment tokens in
 * PostgreSQL, a managed agent that dials out, signed bundles applied and
 * acknowledged, a restart on the signed cached bundle while the control
 * plane is down, and 50 agents taking a new version.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../control-plane/src/distribution/agent-registry.js';
import { Distribution, startDistributionServer } from '../../control-plane/src/distribution/agent-service.js';
import { SigningKey } from '../../control-plane/src/distribution/signing-key.js';
import { startManagedAgent, type ManagedAgent } from '../../agent/src/control/managed-agent.js';
import { bundleFromConfig } from '../../agent/src/config/to-bundle.js';
import type { AgentConfig } from '../../agent/src/config/types.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, TARGET_NAME, TEST_GROUP, ALL_KINDS } from '../support/agent-harness.js';
import { services } from '../support/services.js';

const log = pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' });
const pool = new pg.Pool({ ...services.postgres, max: 4 });
const schema = `dist_test_${process.pid}`;
let registry: AgentRegistry;
let distribution: Distribution;
let server: { port: number; close(): Promise<void> };
let issuer: TestIssuer;
const agents: ManagedAgent[] = [];
const dirs: string[] = [];

function config(roleKinds: string[]): AgentConfig {
  return {
    agent: { id: 'unused-in-managed-mode' },
    listeners: [{ name: 'pg', protocol: 'postgres', address: '127.0.0.1', port: 0, target: TARGET_NAME, allowPlaintext: true }],
    targets: [{ name: TARGET_NAME, kind: 'postgres', host: services.postgres.host, port: services.postgres.port, database: services.postgres.database, user: services.postgres.user }],
    identity: { issuers: [{ issuer: issuer.issuer, audience: 'warden' }], groupMappings: [{ group: TEST_GROUP, role: 'tester' }] },
    roles: [{ name: 'tester', targets: [TARGET_NAME], statementKinds: roleKinds, defaultAction: 'allow', tables: [] }],
    recording: { kind: 'jsonl', path: 'unused.jsonl' },
  };
}

function stateDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-managed-'));
  dirs.push(d);
  return d;
}

async function managed(dir: string, token?: string, name = 'db-agent'): Promise<ManagedAgent> {
  const m = await startManagedAgent({
    address: `127.0.0.1:${server.port}`,
    credentials: grpc.credentials.createInsecure(),
    stateDir: dir,
    log,
    recordingPath: path.join(dir, 'sessions.jsonl'),
    backoff: { initialMs: 50, maxMs: 500 },
    ...(token ? { enrollment: { token, name } } : {}),
  });
  agents.push(m);
  return m;
}

beforeAll(async () => {
  issuer = await startOidcIssuer();
  registry = new AgentRegistry(pool, schema);
  await registry.migrate();
  distribution = new Distribution(registry, SigningKey.loadOrCreate(path.join(stateDir(), 'cp.key')), log, 1);
  server = await startDistributionServer({ address: '127.0.0.1', port: 0, distribution });
});

afterAll(async () => {
  for (const a of agents) await a.stop().catch(() => undefined);
  await server?.close();
  await issuer?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('managed agents', () => {
  it('enroll with a one-time token, receive the signed bundle and enforce it; a new version is applied and acknowledged', async () => {
    const v1 = bundleFromConfig(config(ALL_KINDS), 'v1');
    distribution.publish(v1);
    const token = await registry.createToken({ ttlMs: 60_000, labels: { site: 'east' } });
    const dir = stateDir();
    const m = await managed(dir, token);
    await m.ready;
    const token1 = await issuer.sign({ groups: [TEST_GROUP] });
    const port = m.agent!.addresses.get('pg')!.port;
    const c = await connectThroughAgent(port, token1);
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await c.end();
    expect((await registry.get(m.agentId))).toMatchObject({ name: 'db-agent', labels: { site: 'east' }, appliedVersion: v1.version });
    expect(fs.readFileSync(path.join(dir, 'agent.key'), 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
    expect(fs.statSync(path.join(dir, 'agent.key')).mode & 0o077).toBe(0);

    const v2 = bundleFromConfig(config(['transaction', 'session']), 'v2');
    const acked = distribution.waitForAcks(v2.version, 1, 5000);
    distribution.publish(v2);
    await acked;
    const c2 = await connectThroughAgent(port, await issuer.sign({ groups: [TEST_GROUP] }));
    await expect(c2.query('SELECT 1')).rejects.toMatchObject({ code: '42501' });
    await c2.end();
    // The one-time token is spent, and it was never stored in plaintext.
    await expect(managed(stateDir(), token, 'second')).rejects.toThrow(/token used/);
    const stored = await pool.query(`SELECT token_hash FROM "${schema}".enrollment_tokens`);
    expect(JSON.stringify(stored.rows)).not.toContain(token);
  });

  it('refuses expired and unknown tokens', async () => {
    const expired = await registry.createToken({ ttlMs: -1 });
    await expect(managed(stateDir(), expired)).rejects.toThrow(/token expired/);
    await expect(managed(stateDir(), 'wde_not-a-real-token')).rejects.toThrow(/token unknown/);
  });

  it('after a restart with the control plane down, serves the signed cached bundle; a tampered cache is refused', async () => {
    distribution.publish(bundleFromConfig(config(ALL_KINDS), 'v3'));
    const dir = stateDir();
    const first = await managed(dir, await registry.createToken({ ttlMs: 60_000 }));
    await first.ready;
    await first.stop();
    const cache = path.join(dir, 'bundle.json');
    expect(fs.existsSync(cache)).toBe(true);

    // Control plane unreachable: point the agent at a closed port.
    const offline = async (): Promise<ManagedAgent> => {
      const m = await startManagedAgent({ address: '127.0.0.1:1', credentials: grpc.credentials.createInsecure(), stateDir: dir, log, recordingPath: path.join(dir, 's.jsonl'), backoff: { initialMs: 1000, maxMs: 1000 } });
      agents.push(m);
      return m;
    };
    const restarted = await offline();
    expect(restarted.agent).not.toBeNull();
    const c = await connectThroughAgent(restarted.agent!.addresses.get('pg')!.port, await issuer.sign({ groups: [TEST_GROUP] }));
    expect((await c.query('SELECT 2 AS ok')).rows[0].ok).toBe(2);
    await c.end();
    await restarted.stop();

    const j = JSON.parse(fs.readFileSync(cache, 'utf8'));
    const bytes = Buffer.from(j.bytes, 'base64');
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x01;
    fs.writeFileSync(cache, JSON.stringify({ ...j, bytes: bytes.toString('base64') }));
    const refused = await offline();
    expect(refused.agent).toBeNull();
    await refused.stop();
  });

  it('hands a new version to 50 connected agents', async () => {
    const token = await registry.createToken({ ttlMs: 60_000, reusable: true });
    const fleet = await Promise.all(Array.from({ length: 50 }, (_, i) => managed(stateDir(), token, `fleet-${i}`)));
    await Promise.all(fleet.map((m) => m.ready));
    const next = bundleFromConfig({ ...config(ALL_KINDS), roles: [{ name: 'tester', targets: [TARGET_NAME], statementKinds: ALL_KINDS, defaultAction: 'allow', tables: [], maxRows: 7 }] }, 'fleet');
    const t0 = performance.now();
    const acked = distribution.waitForAcks(next.version, 50, 10_000);
    distribution.publish(next);
    await acked;
    const ms = performance.now() - t0;
    console.log(`publish → 50 agents acknowledged: ${ms.toFixed(0)} ms`);
    expect(fleet.every((m) => m.agent?.version === next.version)).toBe(true);
  }, 60_000);
});

describe('the gRPC channel over TLS', () => {
  it('works with the control plane CA and is refused by an agent trusting another CA', async () => {
    const { makeTestPki } = await import('../support/certs.js');
    const pki = await makeTestPki();
    const tlsServer = await startDistributionServer({ address: '127.0.0.1', port: 0, tls: { cert: pki.serverCert, key: pki.serverKey }, distribution });
    distribution.publish(bundleFromConfig(config(ALL_KINDS), 'tls'));
    try {
      const token = await registry.createToken({ ttlMs: 60_000, reusable: true });
      const opts = (ca: string, dir: string) => ({
        address: `localhost:${tlsServer.port}`,
        credentials: grpc.credentials.createSsl(Buffer.from(ca)),
        stateDir: dir,
        log,
        recordingPath: path.join(dir, 's.jsonl'),
        enrollment: { token, name: 'tls-agent' },
      });
      const good = await startManagedAgent(opts(pki.caCert, stateDir()));
      agents.push(good);
      await good.ready;
      expect(good.agent).not.toBeNull();
      await expect(startManagedAgent(opts(pki.otherCaCert, stateDir()))).rejects.toThrow(/enrollment refused/);
    } finally {
      await tlsServer.close();
      await pki.remove();
    }
  }, 60_000);
});

describe('audit records stream to the control plane', () => {
  it('arrive in the hash chain exactly once, survive the control plane being down, and verify', async () => {
    const { AuditChain } = await import('../../control-plane/src/audit/hash-chain.js');
    const chain = new AuditChain(pool, `${schema}_audit`);
    await chain.migrate();
    const key = SigningKey.loadOrCreate(path.join(stateDir(), 'audit.key'));
    const dist = new Distribution(registry, key, log, 1, chain);
    dist.publish(bundleFromConfig(config(ALL_KINDS), 'audit'));
    let srv = await startDistributionServer({ address: '127.0.0.1', port: 0, distribution: dist });
    const port = srv.port;
    const dir = stateDir();
    const m = await startManagedAgent({
      address: `127.0.0.1:${port}`, credentials: grpc.credentials.createInsecure(), stateDir: dir, log, recordingPath: path.join(dir, 's.jsonl'),
      backoff: { initialMs: 50, maxMs: 200 }, enrollment: { token: await registry.createToken({ ttlMs: 60_000 }), name: 'audited' },
    });
    agents.push(m);
    await m.ready;
    const pgPort = m.agent!.addresses.get('pg')!.port;
    const run = async (n: number): Promise<void> => {
      const c = await connectThroughAgent(pgPort, await issuer.sign({ groups: [TEST_GROUP] }));
      for (let i = 0; i < n; i++) await c.query(`SELECT ${i} AS n`);
      await c.end();
    };
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 100 && m.spool.pending().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    };
    await run(5);
    await settle();
    expect(m.spool.pending()).toEqual([]);

    // Control plane down: records wait in the spool.
    await srv.close();
    await run(4);
    await new Promise((r) => setTimeout(r, 200));
    expect(m.spool.pending().length).toBeGreaterThanOrEqual(6);

    // Back on the same port: the agent reconnects and replays; nothing is lost or doubled.
    srv = await startDistributionServer({ address: '127.0.0.1', port, distribution: dist });
    await settle();
    expect(m.spool.pending()).toEqual([]);
    const rows = (await pool.query(`SELECT payload FROM "${schema}_audit".audit_log ORDER BY seq`)).rows.map((r: { payload: string }) => JSON.parse(r.payload) as { statement?: { text: string } });
    const statements = rows.filter((r) => r.statement).map((r) => r.statement!.text);
    expect(statements).toEqual(['SELECT 0 AS n', 'SELECT 1 AS n', 'SELECT 2 AS n', 'SELECT 3 AS n', 'SELECT 4 AS n', 'SELECT 0 AS n', 'SELECT 1 AS n', 'SELECT 2 AS n', 'SELECT 3 AS n']);
    await chain.checkpoint(key.privateKey);
    expect(await chain.verify(key.publicKey)).toMatchObject({ ok: true, checkpointsVerified: 1 });
    await m.stop();
    await srv.close();
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}_audit" CASCADE`);
  }, 30_000);
});
