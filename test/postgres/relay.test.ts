/**
 * The agent relays the whole PostgreSQL protocol for a real client against
 * the real server: simple and extended queries, prepared statements,
 * pipelining, COPY both ways, LISTEN/NOTIFY, cancel, and records each
 * statement of the session.
 */
import net from 'node:net';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { serialize } from 'pg-protocol';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, directClient, startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';
import { RawPg } from '../support/raw-pg.js';

let issuer: TestIssuer;
let agent: TestAgent;
let token: string;
const table = `relay_t_${process.pid}`;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  agent = await startTestAgent({ issuer: issuer.issuer });
  token = await issuer.sign({ sub: 'analytics-bot', groups: [TEST_GROUP] });
  const c = await directClient();
  await c.query(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id int primary key, note text)`);
  await c.end();
});

afterAll(async () => {
  const c = await directClient();
  await c.query(`DROP TABLE IF EXISTS ${table}`);
  await c.end();
  await agent?.stop();
  await issuer?.close();
});

describe('relay through the agent', () => {
  it('runs simple queries, multi-statement strings and reports errors with SQLSTATE', async () => {
    const c = await connectThroughAgent(agent.port, token);
    const r = await c.query('SELECT 1 AS one, current_database() AS db');
    expect(r.rows).toEqual([{ one: 1, db: 'test' }]);
    const multi = (await c.query('SELECT 1 AS a; SELECT 2 AS b')) as unknown as Array<{ rows: unknown[] }>;
    expect(multi.map((x) => x.rows)).toEqual([[{ a: 1 }], [{ b: 2 }]]);
    await expect(c.query('SELECT * FROM no_such_table_xyz')).rejects.toMatchObject({ code: '42P01' });
    // The session is still usable after an error.
    expect((await c.query('SELECT 3 AS x')).rows).toEqual([{ x: 3 }]);
    await c.end();
  });

  it('runs extended-protocol queries with parameters and named prepared statements', async () => {
    const c = await connectThroughAgent(agent.port, token);
    const r = await c.query('SELECT $1::int + $2::int AS sum', [40, 2]);
    expect(r.rows[0].sum).toBe(42);
    for (let i = 0; i < 3; i++) {
      const p = await c.query({ name: 'lookup', text: 'SELECT $1::text || $2::text AS s', values: ['a', String(i)] });
      expect(p.rows[0].s).toBe(`a${i}`);
    }
    // Binary result format goes through untouched.
    const bin = await c.query({ text: 'SELECT 7::int4 AS n', binary: true } as pg.QueryConfig);
    // pg hands back binary int4 as its raw 4 bytes when asked for binary.
    expect(Buffer.isBuffer(bin.rows[0].n) ? (bin.rows[0].n as Buffer).readInt32BE(0) : Number(bin.rows[0].n)).toBe(7);
    await c.end();
  });

  it('relays pipelined extended-protocol batches in order', async () => {
    const raw = await RawPg.login(agent.port, token);
    const batch: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      batch.push(
        serialize.parse({ text: `SELECT ${i}::int AS v, $1::text AS t`, types: [] }),
        serialize.bind({ values: [`p${i}`] }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
      );
    }
    raw.send(Buffer.concat(batch));
    for (let i = 0; i < 5; i++) {
      const msgs = await raw.untilReady();
      const row = msgs.find((m) => m.name === 'dataRow') as { fields: string[] } | undefined;
      expect(row?.fields).toEqual([String(i), `p${i}`]);
      expect(msgs.some((m) => m.name === 'commandComplete')).toBe(true);
    }
    raw.end();
  });

  it('copies data in and out', async () => {
    const c = await connectThroughAgent(agent.port, token);
    const lines = Array.from({ length: 5000 }, (_, i) => `${i}\tnote number ${i}\n`).join('');
    await pipeline(Readable.from([lines]), c.query(copyFrom(`COPY ${table} (id, note) FROM STDIN`)));
    expect((await c.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n).toBe(5000);
    let out = '';
    await pipeline(
      c.query(copyTo(`COPY (SELECT id, note FROM ${table} ORDER BY id) TO STDOUT`)),
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          out += chunk.toString();
          cb();
        },
      }),
    );
    expect(out).toBe(lines);
    await c.end();
  });

  it('delivers LISTEN/NOTIFY notifications and notices', async () => {
    const listener = await connectThroughAgent(agent.port, token);
    const notices: string[] = [];
    listener.on('notice', (n) => notices.push(n.message ?? ''));
    await listener.query('LISTEN warden_chan');
    const got = new Promise<string>((resolve) => listener.on('notification', (n) => resolve(n.payload ?? '')));
    const talker = await connectThroughAgent(agent.port, token);
    await talker.query("NOTIFY warden_chan, 'hello from the other side'");
    expect(await got).toBe('hello from the other side');
    await listener.query("DO $$ BEGIN RAISE NOTICE 'careful now'; END $$");
    expect(notices).toContain('careful now');
    await listener.end();
    await talker.end();
  });

  it('cancels a running query with the agent key, never exposing the upstream key', async () => {
    const c = await connectThroughAgent(agent.port, token);
    const upstreamPid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    expect(processID).not.toBe(upstreamPid);
    const sleeping = c.query('SELECT pg_sleep(30)');
    await new Promise((r) => setTimeout(r, 300));
    await new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: agent.port }, () => s.end(serialize.cancel(processID, secretKey)));
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    await expect(sleeping).rejects.toMatchObject({ code: '57014' });
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    // A cancel with a wrong secret is ignored.
    const again = c.query('SELECT pg_sleep(0.5) AS slept');
    await new Promise<void>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: agent.port }, () => s.end(serialize.cancel(processID, secretKey ^ 1)));
      s.on('close', () => resolve());
    });
    await expect(again).resolves.toBeDefined();
    await c.end();
  });

  it('records the session: identity, each statement with rows and errors, and why it ended', async () => {
    const c = await connectThroughAgent(agent.port, token, { application_name: 'record-check' });
    await c.query('SELECT g FROM generate_series(1, 17) g');
    await c.query('SELECT $1::int AS x', [5]);
    await c.query('SELECT 1/0').catch(() => undefined);
    await c.end();
    await new Promise((r) => setTimeout(r, 200));
    const events = await agent.events();
    const start = events.find((e) => e.type === 'session.start' && e.applicationName === 'record-check');
    expect(start).toMatchObject({ identity: { subject: 'analytics-bot', groups: [TEST_GROUP] }, role: 'tester', target: 'clinical' });
    const sid = start!.sessionId;
    expect(sid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const mine = events.filter((e) => e.sessionId === sid);
    const statements = mine.filter((e) => e.type === 'statement');
    expect(statements).toEqual([
      expect.objectContaining({ seq: 1, protocol: 'simple', text: 'SELECT g FROM generate_series(1, 17) g', tag: 'SELECT 17', rows: 17 }),
      expect.objectContaining({ seq: 2, protocol: 'extended', text: 'SELECT $1::int AS x', tag: 'SELECT 1', rows: 1 }),
      expect.objectContaining({ seq: 3, text: 'SELECT 1/0', error: { code: '22012', message: 'division by zero' } }),
    ]);
    expect(mine.at(-1)).toMatchObject({ type: 'session.end', reason: 'client_terminate', statements: 3 });
  });

  it('statements answered in one chunk are recorded in order, each with its own result, before the session end', async () => {
    const c = await connectThroughAgent(agent.port, token, { application_name: 'record-order' });
    // One Query message with three statements: the server's answers arrive together.
    await c.query('SELECT g FROM generate_series(1, 1) g; SELECT g FROM generate_series(1, 2) g; SELECT g FROM generate_series(1, 3) g');
    await c.end();
    await new Promise((r) => setTimeout(r, 200));
    const events = await agent.events();
    const sid = events.find((e) => e.type === 'session.start' && e.applicationName === 'record-order')!.sessionId;
    const mine = events.filter((e) => e.sessionId === sid);
    expect(mine.map((e) => (e.type === 'statement' ? `${e.seq}:${e.rows}:${e.tag}` : e.type))).toEqual([
      'session.start',
      '1:1:SELECT 1',
      '2:2:SELECT 2',
      '3:3:SELECT 3',
      'session.end',
    ]);
  });
});
