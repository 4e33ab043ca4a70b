/**
 * The audit path end to end, and what recording costs the data path.
 *
 * 1. Durable events per second: session events recorded into a managed
 *    agent's spool (fsync'd), streamed over gRPC to the control plane's
 *    AgentService, appended to the PostgreSQL hash chain, acknowledged and
 *    dropped from the spool — counted when the last acknowledgement lands.
 *    The control plane side runs as its own process (audit-cp-child.ts: the
 *    real AgentService and hash chain), as in production.
 * 2. Latency one client sees through the agent, with recording off (a
 *    recorder that keeps nothing, no result capture) and on (the JSONL
 *    recorder, 20 sample rows and the result hash; the fsync'd spool), on a
 *    prepared 10-row query, against PostgreSQL directly as the baseline.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { toBinary } from '@bufbuild/protobuf';
import { PolicyBundleSchema } from '../../proto/src/index.js';
import { AuditChain } from '../../control-plane/src/audit/hash-chain.js';
import { startManagedAgent } from '../../agent/src/control/managed-agent.js';
import { startAgent, startAgentFromBundle } from '../../agent/src/agent.js';
import { bundleFromConfig } from '../../agent/src/config/to-bundle.js';
import { DurableSpool } from '../../agent/src/audit/durable-spool.js';
import type { ResultRecording, SessionEvent, SessionRecorder } from '../../agent/src/audit/events.js';
import type { AgentConfig } from '../../agent/src/config/types.js';
import { services } from '../../test/support/services.js';
import type { ReportSection } from './report.js';

const silent = pino({ level: 'silent' });

function agentConfig(issuer: string, dir: string): AgentConfig {
  return {
    agent: { id: 'bench-audit' },
    listeners: [{ name: 'pg', protocol: 'postgres', address: '127.0.0.1', port: 0, target: 'db', allowPlaintext: true }],
    targets: [{ name: 'db', kind: 'postgres', host: services.postgres.host, port: services.postgres.port, database: services.postgres.database, user: services.postgres.user }],
    identity: { issuers: [{ issuer, audience: 'warden' }], groupMappings: [{ group: 'bench', role: 'bench' }] },
    roles: [{ name: 'bench', targets: ['db'], statementKinds: ['select', 'transaction', 'session'], defaultAction: 'allow', tables: [] }],
    recording: { kind: 'jsonl', path: path.join(dir, 'sessions.jsonl') },
  };
}

/** A statement event as a masked 3-row SELECT produces it. */
function statementEvent(sessionId: string, seq: number): SessionEvent {
  return {
    type: 'statement', sessionId, seq, at: new Date().toISOString(), protocol: 'extended', text: 'select id, mrn, dob from clinic.patients where id = $1',
    rows: 3, tag: 'SELECT 3', durationMs: 0.42, decision: 'mask', ruleIds: ['role/analytics/table/0/column/0'], maskedColumns: [{ column: 'clinic.patients.mrn', strategy: 'hash' }],
    tables: ['clinic.patients'], parameters: [{ value: String(seq) }], resultSha256: 'ab'.repeat(32),
    sample: { columns: ['id', 'mrn', 'dob'], maskedColumns: [1, 2], rows: [['1', 'tok_1f2e3d4c5b6a', '1961'], ['2', 'tok_9a8b7c6d5e4f', '1975'], ['3', 'tok_0a1b2c3d4e5f', '1988']], truncated: false },
  };
}

/** Starts the control plane's audit side (audit-cp-child) as its own process. */
async function startAuditControlPlane(schema: string, keyFile: string, bundle: string): Promise<{ child: ChildProcess; port: number; token: string }> {
  const self = fileURLToPath(import.meta.url);
  const script = path.join(path.dirname(self), `audit-cp-child${path.extname(self)}`);
  const child = spawn(process.execPath, [...process.execArgv, script, schema, keyFile, bundle], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.once('exit', (code) => reject(new Error(`audit control plane exited ${code}`)));
  });
  return { child, ...(JSON.parse(line) as { port: number; token: string }) };
}

export async function auditStreamSection(issuer: string, log: (s: string) => void): Promise<ReportSection> {
  const total = Number(process.env.WARDEN_BENCH_AUDIT_STREAM_EVENTS ?? 100_000);
  const pool = new pg.Pool({ ...services.postgres, max: 2 });
  const schema = `warden_bench_stream_${process.pid}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-stream-'));
  const chain = new AuditChain(pool, schema);
  const bundle = Buffer.from(toBinary(PolicyBundleSchema, bundleFromConfig(agentConfig(issuer, dir), 'bench'))).toString('base64');
  const cp = await startAuditControlPlane(schema, path.join(dir, 'cp.key'), bundle);
  const m = await startManagedAgent({
    address: `127.0.0.1:${cp.port}`, credentials: grpc.credentials.createInsecure(), stateDir: path.join(dir, 'agent'), log: silent,
    recordingPath: path.join(dir, 'agent', 's.jsonl'), enrollment: { token: cp.token, name: 'bench' },
  });
  try {
    await m.ready;
    log(`streaming ${total} audit events: agent spool (fsync) → gRPC → control plane → hash chain → ack`);
    const sessions = 64;
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      const s = i % sessions;
      m.spool.record(statementEvent(`bench-session-${s}`, Math.floor(i / sessions) + 1));
      // One statement per session per event-loop turn, as a live agent serving 64 clients sees them
      // (each arrives in its own socket read); the spool's batches and the stream run in between.
      if (s === sessions - 1) await new Promise((r) => setImmediate(r));
    }
    while (m.spool.pendingCount > 0 || (await chain.head()).size < total) await new Promise((r) => setTimeout(r, 5));
    const seconds = (performance.now() - t0) / 1000;
    const stored = (await chain.head()).size;
    log(`         ${(total / seconds).toFixed(0)} durable events/s`);
    return {
      title: `audit stream, whole path (${total} statement events with 3 sample rows, 64 sessions; agent and control plane in two processes)`,
      rows: [
        { name: 'durable events/s (spool → gRPC → append → ack)', value: `${(total / seconds).toFixed(0)} events/s`, note: `target ≥ 20,000/s; ${stored} stored, each once` },
        { name: 'time to acknowledge all', value: `${seconds.toFixed(2)} s` },
      ],
    };
  } finally {
    await m.stop();
    cp.child.kill('SIGTERM');
    await new Promise((r) => cp.child.once('exit', r));
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Keeps nothing: the agent with recording off. */
const nullRecorder: SessionRecorder = { record() {}, flush: async () => undefined, healthy: true, close: async () => undefined };

async function latency(port: number, password: string | undefined, n: number): Promise<{ avg: number; p50: number; p99: number }> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: password ? 'bench' : services.postgres.user, database: services.postgres.database, ...(password ? { password } : {}) });
  await c.connect();
  const q = { name: 'bench10', text: 'SELECT g, md5(g::text) AS h FROM generate_series($1::int, $1::int + 9) g' };
  for (let i = 0; i < 500; i++) await c.query({ ...q, values: [i] }); // warm up
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await c.query({ ...q, values: [i] });
    times.push(performance.now() - t);
  }
  await c.end();
  times.sort((a, b) => a - b);
  return { avg: times.reduce((a, b) => a + b, 0) / n, p50: times[Math.floor(n / 2)]!, p99: times[Math.floor(n * 0.99)]! };
}

export async function recordingLatencySection(issuer: string, token: string, log: (s: string) => void): Promise<ReportSection> {
  const n = Number(process.env.WARDEN_BENCH_LATENCY_QUERIES ?? 5000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-rec-'));
  const cfg = agentConfig(issuer, dir);
  const off: ResultRecording = { sampleRows: 0, hash: false };
  const variants: Array<[string, () => Promise<{ addresses: Map<string, { port: number }>; stop(): Promise<void> }>]> = [
    ['recording off (nothing kept)', () => startAgentFromBundle({ id: 'off', recordingPath: 'x', results: off }, bundleFromConfig(cfg, 'bench'), { baseDir: dir, logger: silent, recorder: nullRecorder })],
    ['recording on (JSONL, 20 sample rows + hash)', () => startAgent(cfg, { baseDir: dir, logger: silent })],
    ['recording on (fsync spool, 20 rows + hash)', () => startAgentFromBundle({ id: 'spool', recordingPath: 'x' }, bundleFromConfig(cfg, 'bench'), { baseDir: dir, logger: silent, recorder: new DurableSpool({ dir: path.join(dir, 'spool') }) })],
  ];
  const rounds = Number(process.env.WARDEN_BENCH_LATENCY_ROUNDS ?? 3);
  try {
    log(`latency of a prepared 10-row query, one client, ${n} queries: direct and through the agent (variants interleaved, best of ${rounds})`);
    const agents = await Promise.all(variants.map(async ([label, start]) => ({ label, agent: await start() })));
    const best = new Map<string, { avg: number; p50: number; p99: number }>();
    const keep = (label: string, r: { avg: number; p50: number; p99: number }): void => {
      if (!best.has(label) || r.avg < best.get(label)!.avg) best.set(label, r);
    };
    try {
      // Interleaved rounds, best of each: on a shared machine a burst of other work hits one round, not one variant.
      for (let round = 0; round < rounds; round++) {
        keep('direct', await latency(services.postgres.port, undefined, n));
        for (const { label, agent } of agents) keep(label, await latency(agent.addresses.get('pg')!.port, token, n));
      }
    } finally {
      for (const { agent } of agents) await agent.stop();
    }
    const direct = best.get('direct')!;
    const us = (ms: number): string => `${(ms * 1000).toFixed(0)} µs`;
    const offAdded = best.get(variants[0]![0])!.avg - direct.avg;
    const rows: ReportSection['rows'] = [{ name: 'direct', value: `${us(direct.avg)} avg`, note: `p50 ${us(direct.p50)}, p99 ${us(direct.p99)}` }];
    for (const [label] of variants) {
      const r = best.get(label)!;
      const added = r.avg - direct.avg;
      log(`         ${label}: ${us(r.avg)} avg`);
      rows.push({ name: label, value: `${us(r.avg)} avg`, note: `agent adds ${us(added)}; p50 ${us(r.p50)}, p99 ${us(r.p99)}` });
      if (label !== variants[0]![0]) rows.push({ name: '  of which recording', value: `${us(added - offAdded)} per statement` });
    }
    return { title: `added latency, recording on vs off (prepared SELECT of 10 rows, 1 client, ${n} queries, agent in-process)`, rows };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
