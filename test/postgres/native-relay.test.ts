/**
 * The native relay (agent/native) carries relay-only sessions. The same
 * workload through it and through the JavaScript relay must give the client
 * the same answers and leave the same statement records: text, tags, rows,
 * errors, parameters, sample rows and the SHA-256 of every result — byte for
 * byte in the JSONL log, where the relay writes most statements' lines
 * itself and hands the rest (text that is not UTF-8, binary values) to
 * JavaScript. The protocol and robustness suites also run through it (the
 * `native-relay` project in vitest.config.ts).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline } from 'node:stream/promises';
import { Readable, Writable } from 'node:stream';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { serialize } from 'pg-protocol';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, directClient, startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';
import { RawPg } from '../support/raw-pg.js';
import type { SessionEvent } from '../../agent/src/audit/events.js';
import { readJsonl } from '../../agent/src/audit/jsonl-recorder.js';

let issuer: TestIssuer;
let native: TestAgent;
let js: TestAgent;
let token: string;
const table = `native_relay_t_${process.pid}`;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  native = await startTestAgent({ issuer: issuer.issuer, enforcement: 'relay-only', nativeRelay: true });
  js = await startTestAgent({ issuer: issuer.issuer, enforcement: 'relay-only', nativeRelay: false });
  token = await issuer.sign({ sub: 'analytics-bot', groups: [TEST_GROUP] });
  const c = await directClient();
  await c.query(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id int primary key, note text, payload bytea)`);
  await c.end();
});

afterAll(async () => {
  const c = await directClient();
  await c.query(`DROP TABLE IF EXISTS ${table}`);
  await c.end();
  await native?.stop();
  await js?.stop();
  await issuer?.close();
});

/** Everything a client can observe of one workload, and what the relay must record of it. */
async function workload(agent: TestAgent): Promise<unknown[]> {
  const seen: unknown[] = [];
  const c = await connectThroughAgent(agent.port, token, { application_name: 'parity' });
  const notices: string[] = [];
  c.on('notice', (n) => notices.push(n.message ?? ''));
  const q = async (text: string, values?: unknown[]): Promise<void> => {
    try {
      const r = await c.query({ text, ...(values ? { values } : {}) });
      const results = Array.isArray(r) ? r : [r];
      seen.push(results.map((x: { command: string; rowCount: number | null; rows: unknown[] }) => [x.command, x.rowCount, x.rows]));
    } catch (err) {
      seen.push({ code: (err as { code?: string }).code, message: (err as Error).message });
    }
  };
  await q(`TRUNCATE ${table}`);
  await q('SELECT 1 AS one, $$tab\there$$ AS t, NULL AS n');
  await q('SELECT 1 AS a; SELECT 2 AS b, 3 AS c');
  await q('SELECT 1/0');
  await q('');
  await q(`INSERT INTO ${table} SELECT g, 'note ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 500) g`);
  await q(`SELECT * FROM ${table} ORDER BY id`);
  await q(`SELECT id, note FROM ${table} WHERE id = $1 OR note = $2`, [7, 'note 9']);
  await q(`SELECT payload FROM ${table} WHERE id = $1`, [Buffer.from('not a number')]);
  await q('SELECT length($1::bytea) AS n', [Buffer.from([0, 1, 2, 0xff])]);
  // Results in binary format: the sample reads them by the types the statement's Describe gave.
  // node-postgres asks for binary results with `binary`, which its types leave out.
  const binaryQuery = { text: 'SELECT $1::int4 AS i, $$x$$::text AS t, 2.5::float8 AS f', values: [5], binary: true };
  const binary = await c.query(binaryQuery as { text: string; values: unknown[] });
  seen.push(binary.rows.map((r: Record<string, unknown>) => Object.values(r).map((v) => (Buffer.isBuffer(v) ? v.toString('hex') : v))));
  // Rejected at Parse (a syntax error) and at Bind (a parameter the type refuses): recorded with their errors.
  await q('SELEC $1', [1]);
  await q('SELECT $1::int AS n', ['abc']);
  for (let i = 0; i < 3; i++) {
    const r = await c.query({ name: 'by_id', text: `SELECT id, note FROM ${table} WHERE id = $1`, values: [i + 1] });
    seen.push(r.rows);
  }
  await q('BEGIN');
  await q(`UPDATE ${table} SET note = 'changed' WHERE id < 10`);
  await q('SELECT no_such_column');
  await q('SELECT 1');
  await q('ROLLBACK');
  await q("DO $$BEGIN RAISE NOTICE 'hello from the server'; END$$");
  // Everything JSON must escape, and what it must not: in the text, a column name and a value.
  await q('SELECT $x$q " b \\ n\n r\r f\f b\b t\t c\u0001\u001f del\u007f é 漢 😀 \u2028$x$ AS "a ""name"" é", NULL AS "", \'\' AS e');
  // A binary cursor's rows are described in binary format: JavaScript renders them by type.
  await q("BEGIN; DECLARE bc BINARY CURSOR FOR SELECT 7::int4 AS i, 'x'::text AS t, 2.5::float8 AS f; FETCH ALL FROM bc; COMMIT");
  await q(`CREATE TEMP TABLE native_relay_tmp AS SELECT 1 AS x`);
  await q('SELECT generate_series(1, 20000) AS g, repeat($1::text, 40) AS filler', ['x']);
  const copied: Buffer[] = [];
  await pipeline(
    c.query(copyTo(`COPY (SELECT id, note FROM ${table} ORDER BY id LIMIT 50) TO STDOUT`)),
    new Writable({
      write(chunk: Buffer, _e, done) {
        copied.push(chunk);
        done();
      },
    }),
  );
  seen.push(createHash('sha256').update(Buffer.concat(copied)).digest('hex'));
  await pipeline(Readable.from(['1001\tfrom copy\n', '1002\tmore\n']), c.query(copyFrom(`COPY ${table} (id, note) FROM STDIN`)));
  await q(`SELECT count(*) FROM ${table}`);
  seen.push(notices);
  await c.end();

  // Pipelined extended protocol in one write: two statements, the second failing as it runs (random() is not
  // folded at Bind), then a simple query after the Sync.
  const raw = await RawPg.login(agent.port, token);
  raw.send(
    Buffer.concat([
      serialize.parse({ text: 'SELECT $1::int * 2 AS doubled', types: [] }),
      serialize.bind({ values: ['21'] }),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.parse({ text: 'SELECT 1/(random() * $1::int)::int', types: [] }),
      serialize.bind({ values: ['0'] }),
      serialize.execute({}),
      serialize.sync(),
      serialize.query('SELECT 42 AS answer'),
      // The statement described, then bound for binary results: the formats come from the Bind, not the description.
      serialize.parse({ name: 'bin_s', text: 'SELECT $1::int8 AS big, 1.5::float4 AS small', types: [] }),
      serialize.describe({ type: 'S', name: 'bin_s' }),
      serialize.bind({ statement: 'bin_s', values: ['7'], binary: true }),
      serialize.execute({}),
      serialize.sync(),
      // A batch whose first statement the server rejects at Parse: it is recorded with its own Bind's values.
      serialize.parse({ text: 'SELEC $1', types: [] }),
      serialize.bind({ values: ['5'] }),
      serialize.execute({}),
      serialize.parse({ text: 'SELECT $1::int', types: [] }),
      serialize.bind({ values: ['6'] }),
      serialize.execute({}),
      serialize.sync(),
      // Text that is not UTF-8: the server refuses it, and the record keeps it as JavaScript decodes it.
      Buffer.from([0x51, 0, 0, 0, 16, ...Buffer.from("SELECT '"), 0xff, 0xfe, 0x27, 0]),
    ]),
  );
  const messages: string[] = [];
  for (let ready = 0; ready < 5; ) {
    const m = await raw.waitFor(() => true);
    messages.push(m.name);
    if (m.name === 'readyForQuery') ready++;
  }
  seen.push(messages);
  raw.send(serialize.end());
  await raw.closedWithin(3000);
  return seen;
}

/** The log's statement and session-end lines as written, less what differs from run to run. */
function comparableLines(file: string): string[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{"type":"statement"') || l.startsWith('{"type":"session.end"'))
    .map((l) => {
      // What differs is still written as JavaScript writes it.
      const at = /"at":"([^"]*)"/.exec(l)![1]!;
      expect(new Date(at).toISOString()).toBe(at);
      const ms = /"durationMs":([0-9.e+-]+)/.exec(l)?.[1];
      if (ms !== undefined) expect(`${Number(ms)}`).toBe(ms);
      return l.replace(/"sessionId":"[^"]*"/, '"sessionId":_').replace(/"at":"[^"]*"/, '"at":_').replace(/"durationMs":[0-9.e+-]+/, '"durationMs":_').replace(/"bundleVersion":"[^"]*"/, '"bundleVersion":_');
    });
}

/** A session's records without what differs from run to run (ids, clocks, the bundle's version). */
function comparable(events: SessionEvent[]): unknown[] {
  return events
    .filter((e) => e.type === 'statement' || e.type === 'session.end')
    .map((e) => {
      const { sessionId, at, durationMs, bundleVersion, ...rest } = e as Record<string, unknown>;
      void sessionId, at, bundleVersion;
      expect(typeof durationMs === 'number' || e.type === 'session.end').toBe(true);
      return rest;
    });
}

describe('the native relay', () => {
  it('gives clients the same answers and records the same statements as the JavaScript relay', async () => {
    const throughNative = await workload(native);
    const throughJs = await workload(js);
    expect(throughNative).toEqual(throughJs);
    const nativeEvents = comparable(await native.events());
    const jsEvents = comparable(await js.events());
    expect(nativeEvents.length).toBe(41);
    expect(nativeEvents).toContainEqual(expect.objectContaining({ protocol: 'extended', error: { code: '22012', message: 'division by zero' } }));
    expect(nativeEvents).toEqual(jsEvents);
    // Byte for byte: the relay's own JSON lines are the lines the JavaScript recorder writes.
    await native.agent.recorder.flush();
    await js.agent.recorder.flush();
    expect(comparableLines(native.recordingFile)).toEqual(comparableLines(js.recordingFile));
    // Most statements came as lines the relay wrote; the binary values and the text that is not UTF-8 did not.
    const { lines, records } = native.agent.nativeStatements;
    expect(lines).toBeGreaterThan(20);
    expect(records).toBe(6);
    expect(js.agent.nativeStatements).toEqual({ lines: 0, records: 0 });
    expect(nativeEvents).toContainEqual(expect.objectContaining({ text: "SELECT '\ufffd\ufffd'", error: expect.objectContaining({ code: '22021' }) }));
    // Statements the server rejected before they ran are recorded too, with the values they were sent with.
    const rejected = nativeEvents.filter((e) => (e as { text?: string }).text === 'SELEC $1');
    expect(rejected).toEqual([
      expect.objectContaining({ protocol: 'extended', rows: 0, parameters: [{ value: '1' }], error: expect.objectContaining({ code: '42601' }) }),
      expect.objectContaining({ protocol: 'extended', rows: 0, parameters: [{ value: '5' }], error: expect.objectContaining({ code: '42601' }) }),
    ]);
    expect(nativeEvents).toContainEqual(expect.objectContaining({ text: 'SELECT $1::int AS n', parameters: [{ value: 'abc' }], error: expect.objectContaining({ code: '22P02' }) }));
    // Each result is described by its own columns, however many statements came before it.
    const columns = nativeEvents.flatMap((e) => ((e as { sample?: { columns: string[] } }).sample?.columns.length ? [(e as { sample: { columns: string[] } }).sample.columns] : []));
    expect(columns.slice(0, 4)).toEqual([['one', 't', 'n'], ['a'], ['b', 'c'], ['id', 'note', 'payload']]);
    expect(columns.slice(-4)).toEqual([['count'], ['doubled'], ['answer'], ['big', 'small']]);
    expect(nativeEvents).toContainEqual(expect.objectContaining({ text: 'SELECT $1::int8 AS big, 1.5::float4 AS small', sample: expect.objectContaining({ rows: [['7', '1.5']] }) }));
    // Extended-protocol results are sampled with their statement's columns, binary values read by type.
    expect(nativeEvents).toContainEqual(expect.objectContaining({ tag: 'SELECT 1', sample: expect.objectContaining({ columns: ['id', 'note'] }) }));
    expect(nativeEvents).toContainEqual(expect.objectContaining({ parameters: [{ value: '5' }], sample: expect.objectContaining({ columns: ['i', 't', 'f'], rows: [['5', 'x', '2.5']] }) }));
    // The sessions really went through the native relay (and only there).
    expect(native.agent.nativeSessions).toBe(2);
    expect(js.agent.nativeSessions).toBe(0);
    // The big result: 20,000 rows counted, 20 sampled, and hashed over every DataRow.
    const big = nativeEvents.find((e) => (e as { tag?: string }).tag === 'SELECT 20000') as { rows: number; resultSha256: string; sample: { rows: unknown[]; truncated: boolean } };
    expect(big.rows).toBe(20000);
    expect(big.sample.rows).toHaveLength(20);
    expect(big.sample.truncated).toBe(true);
    expect(big.resultSha256).toMatch(/^[0-9a-f]{64}$/);
  }, 60_000);

  it('records a statement whose line is larger than a relay batch and a recorder buffer, beside ordinary ones', async () => {
    const c = await connectThroughAgent(native.port, token);
    const big = 'ü'.repeat(1_500_000);
    await c.query('SELECT 1 AS before');
    expect((await c.query(`SELECT length($$${big}$$) AS n`)).rows).toEqual([{ n: 1_500_000 }]);
    await c.query('SELECT 1 AS after');
    await c.end();
    const texts = (await native.events()).flatMap((e) => (e.type === 'statement' ? [e.text] : []));
    const at = texts.indexOf(`SELECT length($$${big}$$) AS n`);
    expect(at).toBeGreaterThan(0);
    expect(texts.slice(at - 1, at + 2)).toEqual(['SELECT 1 AS before', `SELECT length($$${big}$$) AS n`, 'SELECT 1 AS after']);
  });

  it('records durations measured where the bytes passed', async () => {
    const c = await connectThroughAgent(native.port, token);
    await c.query('SELECT pg_sleep(0.2)');
    await c.end();
    const slept = (await native.events()).find((e) => e.type === 'statement' && e.text === 'SELECT pg_sleep(0.2)') as { durationMs: number };
    expect(slept.durationMs).toBeGreaterThanOrEqual(195);
    expect(slept.durationMs).toBeLessThan(2000);
  });

  it('ends a session whose frames the bookkeeping cannot read, and keeps serving the others', async () => {
    const other = await connectThroughAgent(native.port, token);
    const raw = await RawPg.login(native.port, token);
    // A Bind whose parameter-format count runs past the end of the frame: the frame itself is well formed.
    const body = Buffer.concat([Buffer.from('\0\0'), Buffer.from([0x7f, 0xff])]);
    const bind = Buffer.concat([Buffer.from([0x42]), Buffer.alloc(4), body]);
    bind.writeInt32BE(bind.length - 1, 1);
    raw.send(Buffer.concat([bind, serialize.sync()]));
    expect(await raw.closedWithin(5000)).toBe(true);
    expect((await other.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
    await other.end();
    const ends = (await native.events()).filter((e) => e.type === 'session.end' && e.reason === 'protocol_error');
    expect(ends).toHaveLength(1);
    expect(ends[0]).toMatchObject({ detail: expect.stringMatching(/^frame handler failed/) });
  });

  it('ends an idle session with 57P01 when the agent shuts down, and records it', async () => {
    const extra = await startTestAgent({ issuer: issuer.issuer, enforcement: 'relay-only', nativeRelay: true });
    const c = await connectThroughAgent(extra.port, token);
    const ended = new Promise<{ code?: string }>((resolve) => c.on('error', (err) => resolve(err as { code?: string })));
    await c.query('SELECT 1');
    await extra.agent.stop(2000);
    expect((await ended).code).toBe('57P01');
    const events = await readJsonl(extra.recordingFile);
    expect(events.filter((e) => e.type === 'statement')).toHaveLength(1);
    expect(events.find((e) => e.type === 'session.end')).toMatchObject({ reason: 'agent_shutdown', statements: 1 });
    expect(extra.agent.nativeSessions).toBe(1);
  });
});
