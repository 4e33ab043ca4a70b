/**
 * What a statement record keeps, checked against the bytes a real client
 * received through the agent from the real PostgreSQL: the sample equals the
 * masked rows the client got, the hash equals SHA-256 over the DataRow bytes
 * it received, and bind parameters are masked by the classification of the
 * columns they meet (redacted when their origin is unknown).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyWorld, leaked, type PolicyWorld } from '../policy/policy-harness.js';
import { RawPg, serialize } from '../support/raw-pg.js';
import { GROUPS } from '../policy/hospital-policy.js';
import type { StatementEvent } from '../../agent/src/audit/events.js';
import { startTestAgent, connectThroughAgent } from '../support/agent-harness.js';

let w: PolicyWorld;
beforeAll(async () => {
  w = await startPolicyWorld('audit_rec');
}, 60_000);
afterAll(async () => w?.close());

/** The DataRow frames in a byte stream from the server, and their cells as text. */
function dataRows(bytes: Buffer): { frames: Buffer[]; cells: Array<Array<string | null>> } {
  const frames: Buffer[] = [];
  const cells: Array<Array<string | null>> = [];
  for (let pos = 0; pos + 5 <= bytes.length; ) {
    const total = bytes.readInt32BE(pos + 1) + 1;
    const frame = bytes.subarray(pos, pos + total);
    if (frame[0] === 0x44) {
      frames.push(frame);
      const row: Array<string | null> = [];
      let p = 7;
      for (let i = 0; i < frame.readInt16BE(5); i++) {
        const len = frame.readInt32BE(p);
        p += 4;
        row.push(len < 0 ? null : frame.toString('utf8', p, p + len));
        p += Math.max(len, 0);
      }
      cells.push(row);
    }
    pos += total;
  }
  return { frames, cells };
}

const sha256 = (parts: Buffer[]): string => createHash('sha256').update(Buffer.concat(parts)).digest('hex');

/** Runs `send` on a fresh raw session and returns every byte the client received after login, plus the session's statement records. */
async function session(group: keyof typeof GROUPS, send: (raw: RawPg) => void, sub: string): Promise<{ bytes: Buffer; statements: StatementEvent[] }> {
  const raw = await RawPg.login(w.agent.port, await w.tokenFor(group, sub));
  const chunks: Buffer[] = [];
  // Copied before RawPg's parser sees the chunk: pg-protocol reuses earlier input buffers for leftovers.
  raw.socket.prependListener('data', (d: Buffer) => chunks.push(Buffer.from(d)));
  send(raw);
  await raw.untilReady(20_000);
  raw.end();
  await new Promise((r) => setTimeout(r, 100));
  const events = await w.agent.events();
  const start = events.find((e) => e.type === 'session.start' && e.identity.subject === sub)!;
  const statements = events.filter((e): e is StatementEvent => e.type === 'statement' && e.sessionId === start.sessionId);
  return { bytes: Buffer.concat(chunks), statements };
}

describe('statement records keep the result as the client received it', () => {
  it('simple query: masked sample rows equal what the client got, hash equals the DataRow bytes received', async () => {
    const sql = `SELECT id, mrn, last_name, dob FROM ${w.schema}.patients ORDER BY id LIMIT 30`;
    const { bytes, statements } = await session('analytics', (raw) => raw.send(serialize.query(sql)), 'rec-simple');
    const { frames, cells } = dataRows(bytes);
    expect(frames).toHaveLength(30);
    const s = statements.at(-1)!;
    expect(s.rows).toBe(30);
    expect(s.resultSha256).toBe(sha256(frames));
    expect(s.sample).toEqual({ columns: ['id', 'mrn', 'last_name', 'dob'], maskedColumns: [1, 2, 3], rows: cells.slice(0, 20), truncated: true });
    expect(s.sample!.rows[0]![1]).toMatch(/^tok_/);
    expect(leaked(Buffer.from(JSON.stringify(s)), w.secrets)).toEqual([]);
  });

  it('a result cut at the row limit: the record holds what the client got, not what the server sent', async () => {
    // 120 patients, analytics may read 50.
    const { bytes, statements } = await session('analytics', (raw) => raw.send(serialize.query(`SELECT id, sex FROM ${w.schema}.patients`)), 'rec-cap');
    const { frames } = dataRows(bytes);
    expect(frames).toHaveLength(50);
    const s = statements.at(-1)!;
    expect(s).toMatchObject({ rows: 50, truncated: true, tag: 'SELECT 50' });
    expect(s.resultSha256).toBe(sha256(frames));
  });

  it('a large masked result, rewritten across many slabs, is hashed byte for byte', async () => {
    // 120 patients × 200 = 24,000 rows with ssn masked: about 1 MB of rewritten rows, four 256 KiB slabs.
    const sql = `SELECT p.id, p.ssn, g FROM ${w.schema}.patients p CROSS JOIN generate_series(1, 200) g ORDER BY g, p.id`;
    const { bytes, statements } = await session('care', (raw) => raw.send(serialize.query(sql)), 'rec-large-masked');
    const { frames, cells } = dataRows(bytes);
    expect(frames).toHaveLength(24000);
    expect(Buffer.concat(frames).length).toBeGreaterThan(3 * 256 * 1024);
    expect(cells.every((r) => /^#+\d{4}$/.test(r[1]!))).toBe(true);
    const s = statements.at(-1)!;
    expect(s.rows).toBe(24000);
    expect(s.maskedValues).toBe(24000);
    expect(s.resultSha256).toBe(sha256(frames));
    expect(s.sample!.rows).toEqual(cells.slice(0, 20));
  });

  it('a large unmasked result streams past the sample and is still hashed byte for byte', async () => {
    // generate_series yields 20,000 rows with nothing to mask: past the sample they stream through uninspected.
    const sql = `SELECT g, md5(g::text) AS h FROM generate_series(1, 20000) g`;
    const { bytes, statements } = await session('care', (raw) => raw.send(serialize.query(sql)), 'rec-large');
    const { frames, cells } = dataRows(bytes);
    expect(frames).toHaveLength(20000);
    const s = statements.at(-1)!;
    expect(s.rows).toBe(20000);
    expect(s.resultSha256).toBe(sha256(frames));
    expect(s.sample!.rows).toEqual(cells.slice(0, 20));
    expect(s.sample!.truncated).toBe(true);
  });

  it('extended protocol: parameters on PHI columns are masked, others kept; sample and hash match what the client received', async () => {
    const p = [...w.rows.patients].sort((a, b) => Number(a.id) - Number(b.id))[3]!;
    const sql = `SELECT id, ssn, last_name, dob FROM ${w.schema}.patients WHERE last_name = $1 AND id >= $2 ORDER BY id`;
    const { bytes, statements } = await session(
      'care',
      (raw) =>
        raw.send(
          Buffer.concat([
            serialize.parse({ text: sql }),
            serialize.bind({ values: [String(p.last_name), '0'] }),
            serialize.describe({ type: 'P' }),
            serialize.execute({}),
            serialize.sync(),
          ]),
        ),
      'rec-extended',
    );
    const { frames, cells } = dataRows(bytes);
    expect(frames.length).toBeGreaterThan(0);
    const s = statements.at(-1)!;
    expect(s.protocol).toBe('extended');
    // last_name is a direct identifier (allowed to this role, still PHI): recorded by its classification's mask.
    expect(s.parameters).toEqual([{ value: '[REDACTED]', masked: true }, { value: '0' }]);
    expect(s.resultSha256).toBe(sha256(frames));
    expect(s.sample).toMatchObject({ columns: ['id', 'ssn', 'last_name', 'dob'], maskedColumns: [1], rows: cells.slice(0, 20) });
    expect(s.sample!.rows[0]![1]).toMatch(/^#+\d{4}$/);
    expect(JSON.stringify(s)).not.toContain(String(p.ssn));
  });

  it('statements the server rejects at Bind or Parse are recorded with their decision, masked parameters and an error that does not quote the value', async () => {
    const p = [...w.rows.patients][7]!;
    const { bytes, statements } = await session(
      'care',
      (raw) =>
        raw.send(
          Buffer.concat([
            // id is a bigint: the server rejects the second value at Bind, quoting it in its message.
            serialize.parse({ text: `SELECT id FROM ${w.schema}.patients WHERE last_name = $1 AND id = $2` }),
            // A quote inside the value: the server does not escape it.
            serialize.bind({ values: [String(p.last_name), `${String(p.ssn)}"x`] }),
            serialize.execute({}),
            serialize.sync(),
            // The literal cannot be cast: the server rejects the statement at Parse.
            serialize.parse({ text: `SELECT id FROM ${w.schema}.patients WHERE last_name = $1 AND id = '${String(p.ssn)}y'::bigint` }),
            serialize.bind({ values: [String(p.last_name)] }),
            serialize.execute({}),
            serialize.sync(),
          ]),
        ),
      'rec-rejected',
    );
    // The client was told, with the value it sent.
    expect(bytes.toString('latin1')).toContain(`invalid input syntax for type bigint: "${String(p.ssn)}"x"`);
    const [atBind, atParse] = statements.slice(-2);
    expect(atBind).toMatchObject({
      protocol: 'extended',
      decision: 'allow',
      rows: 0,
      tables: [`${w.schema}.patients`],
      error: { code: '22P02', message: 'invalid input syntax for type bigint: "?"' },
      parameters: [{ value: '[REDACTED]', masked: true }, { value: `${String(p.ssn)}"x` }],
    });
    expect(atParse).toMatchObject({
      protocol: 'extended',
      decision: 'allow',
      rows: 0,
      error: { code: '22P02', message: 'invalid input syntax for type bigint: "?"' },
      parameters: [{ value: '[REDACTED]', masked: true }],
    });
    expect(JSON.stringify(statements)).not.toContain(String(p.last_name));
    expect(JSON.stringify(atParse)).not.toContain(String(p.ssn));
  });

  it('a refused statement keeps its parameters masked: a value compared to a masked column, and one of unknown origin', async () => {
    const p = [...w.rows.patients][5]!;
    const { statements } = await session(
      'analytics',
      (raw) =>
        raw.send(
          Buffer.concat([
            serialize.parse({ name: 'by_ssn', text: `SELECT id FROM ${w.schema}.patients WHERE ssn = $1` }),
            serialize.bind({ statement: 'by_ssn', values: [String(p.ssn)] }),
            serialize.execute({}),
            serialize.sync(),
            serialize.parse({ name: 'echo', text: 'SELECT $1::text AS x' }),
            serialize.bind({ statement: 'echo', values: [String(p.ssn)] }),
            serialize.execute({}),
            serialize.sync(),
          ]),
        ),
      'rec-refused',
    );
    const [refused, echoed] = statements.slice(-2);
    expect(refused).toMatchObject({ decision: 'deny', error: { code: '42501' }, parameters: [{ value: '[REDACTED]', masked: true }] });
    // The client typed PHI into a parameter the analysis cannot tie to a column: under PHI restrictions it is redacted.
    expect(echoed).toMatchObject({ parameters: [{ value: '[REDACTED]', masked: true }] });
    // The client got its value echoed back; the record's sample keeps it redacted, like the statement's literals.
    expect(echoed!.sample).toMatchObject({ maskedColumns: [0], rows: [['[REDACTED]']] });
    expect(JSON.stringify(statements)).not.toContain(String(p.ssn));
  });

  it('a literal the client typed and got back is kept out of the sample; plain columns stay as received', async () => {
    const p = [...w.rows.patients].sort((a, b) => Number(a.id) - Number(b.id))[0]!;
    const sql = `SELECT id, '${String(p.ssn)}' AS typed, sex FROM ${w.schema}.patients ORDER BY id LIMIT 2`;
    const { bytes, statements } = await session('analytics', (raw) => raw.send(serialize.query(sql)), 'rec-literal');
    const { cells, frames } = dataRows(bytes);
    expect(cells[0]![1]).toBe(String(p.ssn)); // what the client received
    const s = statements.at(-1)!;
    expect(s.sample!.rows).toEqual(cells.map((r) => [r[0], '[REDACTED]', r[2]]));
    expect(s.sample!.maskedColumns).toEqual([1]);
    expect(s.resultSha256).toBe(sha256(frames)); // the hash still covers exactly what was sent
    expect(JSON.stringify(s)).not.toContain(String(p.ssn));
  });
});

describe('recording.sampleRows', () => {
  it('caps the sample at the configured size; 0 keeps no rows but still the count and the hash', async () => {
    for (const sampleRows of [3, 0]) {
      const agent = await startTestAgent({ issuer: w.issuer.issuer, sampleRows });
      try {
        const c = await connectThroughAgent(agent.port, await w.issuer.sign({ sub: `sample-${sampleRows}`, groups: ['warden-testers'] }));
        await c.query('SELECT g FROM generate_series(1, 10) g');
        await c.end();
        await new Promise((r) => setTimeout(r, 100));
        const s = (await agent.events()).filter((e): e is StatementEvent => e.type === 'statement').at(-1)!;
        expect(s.rows).toBe(10);
        expect(s.resultSha256).toMatch(/^[0-9a-f]{64}$/);
        if (sampleRows === 0) expect(s.sample).toBeUndefined();
        else expect(s.sample).toEqual({ columns: ['g'], maskedColumns: [], rows: [['1'], ['2'], ['3']], truncated: true });
      } finally {
        await agent.stop();
      }
    }
  });
});
