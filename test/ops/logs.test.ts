/**
 * What the processes log, read back the way an operator's log pipeline
 * would: the real agent and control plane entry points as child processes at
 * the most verbose level, after masked and unmasked PHI sessions, refused
 * logins, PHI typed into statements and authenticated API calls. No PHI
 * value and no token may appear anywhere in their output.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, directClient, testAgentConfig } from '../support/agent-harness.js';
import { startAgentProcess } from '../support/agent-process.js';
import { hospitalPolicy, GROUPS, HASH_KEY_ENV } from '../policy/hospital-policy.js';
import { loadPhi, phiValues, type PhiRows } from '../fixtures/phi/generate.js';
import { makeRepo, removeTemps } from '../../control-plane/src/gitops/test-support.js';
import { HOSPITAL_REPO } from '../../control-plane/src/config/example-repo.js';
import { services } from '../support/services.js';
import { createLogger } from '../../agent/src/log.js';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { AgentRegistry } from '../../control-plane/src/distribution/agent-registry.js';
import { startManagedAgent } from '../../agent/src/control/managed-agent.js';
import { localTopology } from '../support/hospital-repo.js';

const LOCAL_TOPOLOGY = localTopology();

const schema = `ops_logs_${process.pid}`;
let issuer: TestIssuer;
let rows: PhiRows;

beforeAll(async () => {
  const d = await directClient();
  rows = (await loadPhi(d, { patients: 25, schema, seed: 11 })).rows;
  await d.end();
  issuer = await startOidcIssuer();
}, 60_000);

afterAll(async () => {
  await issuer?.close();
  const d = await directClient();
  await d.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await d.end();
  await removeTemps();
});

describe('agent logs', () => {
  it('hold no PHI value and no token after masked, unmasked and refused sessions', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-logs-'));
    const recording = path.join(dir, 'sessions.jsonl');
    const proc = await startAgentProcess(testAgentConfig({ issuer: issuer.issuer, ...hospitalPolicy(schema) }, recording), { env: { WARDEN_LOG_LEVEL: 'trace' } });
    const tokens: string[] = [];
    const sign = async (group: keyof typeof GROUPS): Promise<string> => {
      const t = await issuer.sign({ sub: `${group}-bot`, groups: [GROUPS[group]] });
      tokens.push(t);
      return t;
    };
    try {
      const patient = rows.patients[0]!;
      const analytics = await connectThroughAgent(proc.pgPort, await sign('analytics'));
      const masked = await analytics.query(`SELECT * FROM ${schema}.patients ORDER BY id`);
      expect(masked.rows).toHaveLength(25);
      expect(JSON.stringify(masked.rows)).not.toContain(patient.ssn!);
      // PHI typed into statements: refused by policy, or refused by the server with the value in its message.
      await expect(analytics.query(`SELECT id FROM ${schema}.patients WHERE ssn = '${patient.ssn}'`)).rejects.toMatchObject({ code: '42501' });
      await expect(analytics.query(`SELECT '${patient.ssn}'::int`)).rejects.toMatchObject({ code: '22P02' });
      await analytics.end();

      // A role that sees PHI unmasked: it goes to the client, never to the log.
      const care = await connectThroughAgent(proc.pgPort, await sign('care'));
      const plain = await care.query(`SELECT first_name, last_name, mrn, phone, email FROM ${schema}.patients ORDER BY id`);
      expect(plain.rows[0]).toMatchObject({ mrn: patient.mrn });
      await care.end();

      // Refused logins: a forged token and an expired one.
      const forged = issuer.tamper(await sign('care'));
      tokens.push(forged);
      await expect(connectThroughAgent(proc.pgPort, forged)).rejects.toMatchObject({ code: '28P01' });
      const expired = await issuer.sign({ sub: 'late-bot', groups: [GROUPS.care] }, { expiresIn: -600 });
      tokens.push(expired);
      await expect(connectThroughAgent(proc.pgPort, expired)).rejects.toMatchObject({ code: '28P01' });

      proc.child.kill('SIGTERM');
      expect(await proc.exited).toMatchObject({ code: 0 });
      const out = proc.output();
      // The log is not empty: sessions, refusals and the shutdown are all there.
      expect(out).toMatch(/"msg":"session started"/);
      expect(out).toMatch(/"msg":"session ended"/);
      expect(out).toMatch(/"msg":"login refused"/);
      expect(out).toMatch(/"msg":"stopped; session records flushed"/);

      const secrets = [...phiValues(rows, ['name', 'ssn', 'mrn', 'phone', 'email', 'address', 'dob'])].filter((s) => s.length >= 5);
      expect(secrets.length).toBeGreaterThan(100);
      const leakedPhi = secrets.filter((s) => out.includes(s));
      expect(leakedPhi).toEqual([]);
      for (const t of tokens) {
        // Neither the token nor its signature (the part that makes it usable) appears.
        expect(out).not.toContain(t);
        expect(out).not.toContain(t.split('.')[2]!);
      }
      expect(out).not.toContain(process.env[HASH_KEY_ENV]!);
      // The session records keep identities, not tokens.
      const recorded = fs.readFileSync(recording, 'utf8');
      for (const t of tokens) expect(recorded).not.toContain(t.split('.')[2]!);
    } finally {
      await proc.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('the shared logger', () => {
  it('redacts secrets passed by mistake: tokens, passwords, client secrets, Authorization headers', () => {
    const lines: string[] = [];
    const log = createLogger('trace', { name: 'redact-test', destination: { write: (s: string) => void lines.push(s) } });
    log.info({ token: 'tok-AAA', err: { password: 'pw-BBB' }, req: { headers: { authorization: 'Bearer CCC', host: 'x' } }, client: { client_secret: 'cs-DDD' } }, 'oops');
    log.child({ enrollmentToken: 'enr-EEE' }).warn({ upstream: { accessToken: 'at-FFF' } }, 'child');
    const text = lines.join('');
    for (const s of ['tok-AAA', 'pw-BBB', 'Bearer CCC', 'cs-DDD', 'enr-EEE', 'at-FFF']) expect(text).not.toContain(s);
    expect(text.match(/\[redacted\]/g)).toHaveLength(6);
    expect(JSON.parse(lines[0]!)).toMatchObject({ name: 'redact-test', msg: 'oops', req: { headers: { host: 'x' } } });
  });
});

describe('control plane logs', () => {
  it('hold no bearer token after authenticated and refused API calls; SIGTERM closes API and gRPC with an agent connected', async () => {
    const repo = await makeRepo();
    await repo.commit({ ...HOSPITAL_REPO, ...LOCAL_TOPOLOGY }, 'initial policy');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cp-logs-'));
    const cpSchema = `cp_logs_${process.pid}`;
    const file = path.join(dir, 'control-plane.yaml');
    fs.writeFileSync(
      file,
      stringify({
        databaseUrl: `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`,
        databaseSchema: cpSchema,
        repository: { path: repo.dir },
        branch: 'main',
        pollIntervalMs: 60_000,
        http: { address: '127.0.0.1', port: 0 },
        grpc: { address: '127.0.0.1', port: 0 },
        signingKeyFile: path.join(dir, 'signing.key'),
        people: { issuers: [{ issuer: issuer.issuer, audience: 'warden-api' }], capabilities: { admin: ['admins'], approver: [], auditor: ['auditors'] } },
      }),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'control-plane/src/main.ts', '--config', file], { env: { ...process.env, WARDEN_LOG_LEVEL: 'trace' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const pool = new pg.Pool({ ...services.postgres, max: 1 });
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cp-logs-agent-'));
    let agent: Awaited<ReturnType<typeof startManagedAgent>> | undefined;
    try {
      let port = 0;
      let grpcPort = 0;
      for (let i = 0; i < 300 && !port; i++) {
        const m = /"http":(\d+),"grpc":(\d+),"msg":"control plane started"/.exec(out);
        if (m) [port, grpcPort] = [Number(m[1]), Number(m[2])];
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(port, out).toBeGreaterThan(0);
      // A managed agent holds a Connect stream open, as in production (its bundle needs the hash key).
      process.env.WARDEN_HASH_KEY ??= 'cp-logs-test-hash-key-0123456789';
      agent = await startManagedAgent({
        address: `127.0.0.1:${grpcPort}`,
        credentials: grpc.credentials.createInsecure(),
        stateDir,
        log: pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' }),
        recordingPath: 'unused.jsonl',
        backoff: { initialMs: 5000, maxMs: 5000 },
        enrollment: { token: await new AgentRegistry(pool, cpSchema).createToken({ ttlMs: 60_000 }), name: 'connected' },
      });
      await agent.ready;
      const lost = new Promise<void>((resolve) => agent!.link.once('disconnected', () => resolve()));
      const good = await issuer.sign({ sub: 'auditor-1', groups: ['auditors'] }, { audience: 'warden-api' });
      const forged = issuer.tamper(good);
      const list = await fetch(`http://127.0.0.1:${port}/v1/agents`, { headers: { authorization: `Bearer ${good}` } });
      expect(list.status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/v1/agents`, { headers: { authorization: `Bearer ${forged}` } })).status).toBe(401);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^warden_approval_wait_seconds_count 0$/m);

      const stopAt = Date.now();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // The open agent stream is cut after at most a second, not waited on forever.
      expect(Date.now() - stopAt).toBeLessThan(5000);
      await lost;
      expect(out).toMatch(/"msg":"control plane stopped"/);
      // Requests were logged (trace level), their credentials were not.
      expect(out).toMatch(/"url":"\/v1\/agents"/);
      for (const t of [good, forged]) expect(out).not.toContain(t.split('.')[2]!);
    } finally {
      await agent?.stop();
      await pool.end();
      fs.rmSync(stateDir, { recursive: true, force: true });
      if (child.exitCode === null) child.kill('SIGKILL');
      const d = await directClient();
      await d.query(`DROP SCHEMA IF EXISTS "${cpSchema}" CASCADE`);
      await d.end();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
