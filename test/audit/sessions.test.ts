/**
 * `warden sessions list|replay` (a child process, as people run it) and
 * GET /v1/sessions[/:id] (with a real OIDC token), over a real audit chain
 * in PostgreSQL holding agents' events in exactly the shape the gRPC
 * service stores them (AuditEvent → proto JSON + agent id).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { AuditChain } from '../../control-plane/src/audit/hash-chain.js';
import { auditRecordOf } from '../../control-plane/src/audit/audit-record.js';
import { SessionQuery } from '../../control-plane/src/audit/session-query.js';
import { buildApi } from '../../control-plane/src/api/server.js';
import { toAuditEvent } from '../../agent/src/audit/to-proto.js';
import { toBinary } from '@bufbuild/protobuf';
import { AuditEventSchema } from '../../proto/src/index.js';
import type { SessionEvent } from '../../agent/src/audit/events.js';
import { TokenVerifier } from '../../agent/src/identity/index.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { services } from '../support/services.js';

const run = promisify(execFile);
const auditKey = generateKeyPairSync('ed25519').privateKey;
const pool = new pg.Pool({ ...services.postgres, max: 2 });
const schema = `sessions_test_${process.pid}`;
const url = `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`;
const T0 = Date.parse('2026-11-02T09:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();
const ALICE = '01a20000-0000-7000-8000-00000000000a';
const BOB = '01a20000-0000-7000-8000-00000000000b';
const MALLORY = '01a20000-0000-7000-8000-00000000000c';

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t = Date.now();
  return run(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args, '--database-url', url, '--schema', schema]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr, ms: Date.now() - t }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr, ms: Date.now() - t }),
  );
}

const start = (sessionId: string, subject: string, role: string, ms: number): SessionEvent => ({
  type: 'session.start', sessionId, at: at(ms), agentId: 'agent-east-1', listener: 'pg', target: 'clinical', clientAddress: '10.0.0.7:51000',
  identity: { subject, issuer: 'https://idp.example.org', groups: ['ai-clinical-analytics'] }, role, tls: true,
});

/** Alice reads masked patients, is refused billing; Bob reads encounters an hour later; Mallory's token is refused. */
const sessions: SessionEvent[][] = [
  [
    start(ALICE, 'alice-bot', 'clinical-analytics', 0),
    {
      type: 'statement', sessionId: ALICE, seq: 1, at: at(400), protocol: 'extended', text: 'select id, mrn from clinic.patients where id >= $1', rows: 30, tag: 'SELECT 30',
      durationMs: 150, decision: 'mask', ruleIds: ['role/clinical-analytics/table/0/column/0'], maskedColumns: [{ column: 'clinic.patients.mrn', strategy: 'hash' }],
      tables: ['clinic.patients'], parameters: [{ value: '1' }], resultSha256: 'ab'.repeat(32),
      sample: { columns: ['id', 'mrn'], maskedColumns: [1], rows: [['1', 'tok_1f2e3d'], ['2', 'tok_9a8b7c']], truncated: true },
    },
    {
      type: 'statement', sessionId: ALICE, seq: 2, at: at(1500), protocol: 'simple', text: 'select insurer from clinic.billing', rows: 0, durationMs: 0.4, decision: 'deny',
      ruleIds: ['role/clinical-analytics/default'], tables: ['clinic.billing'], error: { code: '42501', message: 'table clinic.billing is not permitted for role "clinical-analytics"' },
    },
    { type: 'session.end', sessionId: ALICE, at: at(1600), reason: 'client_terminate', statements: 2 },
  ],
  [
    start(BOB, 'bob-bot', 'billing', 3_600_000),
    { type: 'statement', sessionId: BOB, seq: 1, at: at(3_600_050), protocol: 'simple', text: 'select department from clinic.encounters', rows: 3, tag: 'SELECT 3', durationMs: 2, decision: 'allow', ruleIds: [], tables: ['clinic.encounters'] },
  ],
  [{ type: 'auth.refused', sessionId: MALLORY, at: at(7_200_000), agentId: 'agent-east-1', listener: 'pg', clientAddress: '10.0.0.9:40000', sqlState: '28P01', reason: 'token expired', subject: 'mallory' }],
];

let issuer: TestIssuer;
let api: FastifyInstance;
beforeAll(async () => {
  const chain = new AuditChain(pool, schema);
  await chain.migrate();
  // Appended as the agent service does: one sequence per session event, in the stored JSON shape.
  await chain.append(sessions.flatMap((events) => events.map((e, i) => auditRecordOf('agent-east-1', toBinary(AuditEventSchema, toAuditEvent(e, i + 1, 'bundle-v1'))))));
  issuer = await startOidcIssuer();
  api = await buildApi({
    people: { verifier: new TokenVerifier([{ issuer: issuer.issuer, audience: 'warden-api' }]), capabilities: { admin: ['platform-admins'], approver: ['approvers'], auditor: ['compliance'] } },
    health: { ready: () => true },
    config: { current: () => undefined, lastAttempt: () => undefined },
    agents: { list: async () => [] },
    sessions: { query: new SessionQuery(pool, schema) },
    audit: { chain: new AuditChain(pool, schema), publicKey: createPublicKey(auditKey) },
  });
}, 30_000);
afterAll(async () => {
  await api?.close();
  await issuer?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe('warden sessions list', () => {
  it('lists every session most recent first, refused logins included', async () => {
    const r = await warden(['sessions', 'list', '--json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout).sessions as Array<Record<string, unknown>>;
    expect(list.map((s) => s.sessionId)).toEqual([MALLORY, BOB, ALICE]);
    expect(list[2]).toMatchObject({ subject: 'alice-bot', role: 'clinical-analytics', statements: 2, decisions: { mask: 1, deny: 1 }, tables: ['clinic.patients', 'clinic.billing'], endReason: 'client_terminate' });
    expect(list[0]).toMatchObject({ subject: 'mallory', startedAt: '2026-11-02T11:00:00.000Z', refused: { sqlstate: '28P01', reason: 'token expired' } });
  }, 30_000);

  it('filters by identity, time range, table and decision; nothing matching exits 1', async () => {
    const ids = async (args: string[]) => (JSON.parse((await warden(['sessions', 'list', '--json', ...args])).stdout).sessions as Array<{ sessionId: string }>).map((s) => s.sessionId);
    expect(await ids(['--identity', 'bob-bot'])).toEqual([BOB]);
    expect(await ids(['--from', '2026-11-02T09:30:00Z', '--to', '2026-11-02T10:30:00Z'])).toEqual([BOB]);
    expect(await ids(['--table', 'clinic.patients'])).toEqual([ALICE]);
    expect(await ids(['--decision', 'allow'])).toEqual([BOB]);
    expect(await ids(['--decision', 'deny', '--table', 'clinic.billing', '--identity', 'alice-bot'])).toEqual([ALICE]);
    const none = await warden(['sessions', 'list', '--identity', 'nobody']);
    expect(none.code).toBe(1);
    expect(none.stdout).toMatch(/no sessions match/);
  }, 60_000);

  it('shows a readable table, and refuses bad flags with exit 2', async () => {
    const r = await warden(['sessions', 'list']);
    expect(r.stdout).toMatch(new RegExp(`${ALICE} \\| 2026-11-02T09:00:00.000Z \\| alice-bot +\\| clinical-analytics \\| clinical \\| 2 +\\| mask:1 deny:1 \\| client_terminate`));
    expect((await warden(['sessions', 'list', '--decision', 'maybe'])).code).toBe(2);
    expect((await warden(['sessions', 'list', '--from', 'yesterday-ish'])).code).toBe(2);
    expect((await warden(['sessions', 'list', '--frobnicate'])).code).toBe(2);
  }, 30_000);
});

describe('warden sessions replay', () => {
  it('shows the session as the client saw it: statements, masked rows and parameters, errors', async () => {
    const r = await warden(['sessions', 'replay', ALICE, '--instant']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('session 01a20000-0000-7000-8000-00000000000a: alice-bot as clinical-analytics');
    expect(r.stdout).toContain('[+0.250s] select id, mrn from clinic.patients where id >= $1');
    expect(r.stdout).toContain('parameters: $1=1');
    expect(r.stdout).toMatch(/ id \| mrn +\n\s+-+\+-+\n\s+ 1 {2}\| tok_1f2e3d\*/);
    expect(r.stdout).toContain(`SELECT 30 (30 rows, 2 shown; 150.000 ms; sha256 ${'ab'.repeat(32)})`);
    expect(r.stdout).toContain('ERROR 42501: table clinic.billing is not permitted');
    expect(r.stdout).toContain('session ended (client_terminate) at 2026-11-02T09:00:01.600Z: 2 statements');
  }, 30_000);

  it('keeps the original pace divided by --speed', async () => {
    // The deny happened 1.5 s in: at the original pace the replay takes that long, at 100x it is instant.
    const fast = await warden(['sessions', 'replay', ALICE, '--speed', '100']);
    const paced = await warden(['sessions', 'replay', ALICE]);
    expect(paced.stdout).toBe(fast.stdout);
    expect(paced.ms - fast.ms).toBeGreaterThan(1000);
  }, 30_000);

  it('prints JSON and HTML; an unknown session exits 1', async () => {
    const j = JSON.parse((await warden(['sessions', 'replay', ALICE, '--format', 'json'])).stdout);
    expect(j.statements[0]).toMatchObject({ decision: 'mask', parameters: [{ value: '1', masked: false }], sample: { columns: ['id', 'mrn'], rows: [[{ value: '1', masked: false }, { value: 'tok_1f2e3d', masked: true }], expect.anything()] } });
    const html = await warden(['sessions', 'replay', ALICE, '--format', 'html']);
    expect(html.stdout).toMatch(/^<!doctype html>/);
    expect(html.stdout).toContain('<td class="masked">tok_1f2e3d</td>');
    const missing = await warden(['sessions', 'replay', '01a20000-0000-7000-8000-0000000000ff', '--instant']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no session/);
  }, 30_000);
});

describe('GET /v1/sessions', () => {
  const auth = async (groups: string[]) => ({ authorization: `Bearer ${await issuer.sign({ sub: 'carol', groups }, { audience: 'warden-api' })}` });

  it('answers auditors with the same search and replay as the CLI', async () => {
    const h = await auth(['compliance']);
    const list = await api.inject({ url: '/v1/sessions?table=clinic.patients&decision=mask', headers: h });
    expect(list.statusCode).toBe(200);
    expect(list.json().sessions.map((s: { sessionId: string }) => s.sessionId)).toEqual([ALICE]);
    const one = await api.inject({ url: `/v1/sessions/${ALICE}`, headers: h });
    expect(one.statusCode).toBe(200);
    expect(one.json()).toEqual(await new SessionQuery(pool, schema).get(ALICE));
    expect(one.json().statements[1]).toMatchObject({ decision: 'deny', error: { sqlstate: '42501' } });
    expect((await api.inject({ url: '/v1/sessions/nope', headers: h })).statusCode).toBe(404);
    expect((await api.inject({ url: '/v1/sessions?decision=maybe', headers: h })).statusCode).toBe(400);
  });

  it('publishes the checkpoint key and verifies the chain for auditors', async () => {
    const key = (await api.inject({ url: '/v1/audit/public-key' })).json();
    expect(key).toMatchObject({ algorithm: 'Ed25519', keyId: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(createPublicKey(key.publicKeyPem).export({ type: 'spki', format: 'der' })).toEqual(createPublicKey(auditKey).export({ type: 'spki', format: 'der' }));
    await new AuditChain(pool, schema).checkpoint(auditKey);
    const h = await auth(['compliance']);
    const v = await api.inject({ method: 'POST', url: '/v1/audit/verify', headers: h, payload: {} });
    expect(v.json()).toEqual({ ok: true, checked: 7, checkpointsVerified: 1 });
    expect((await api.inject({ method: 'POST', url: '/v1/audit/verify', headers: h, payload: { fromCheckpoint: 99 } })).statusCode).toBe(400);
    expect((await api.inject({ method: 'POST', url: '/v1/audit/verify', headers: await auth(['interns']), payload: {} })).statusCode).toBe(403);
  });

  it('refuses people without the auditor capability, and anonymous callers', async () => {
    expect((await api.inject({ url: '/v1/sessions' })).statusCode).toBe(401);
    expect((await api.inject({ url: '/v1/sessions', headers: await auth(['interns']) })).statusCode).toBe(403);
    expect((await api.inject({ url: `/v1/sessions/${ALICE}`, headers: await auth(['interns']) })).statusCode).toBe(403);
  });
});
