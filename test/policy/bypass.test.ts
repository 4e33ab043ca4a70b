/**
 * Bypass attempts by the clinical-analytics role, which may see patients
 * only de-identified (identifiers redacted or tokenised, dates as years,
 * ZIP3) and may not read notes or billing. For each attempt every byte the
 * client receives — rows, errors, notices — is searched for the raw PHI of
 * the generated data set (names, SSNs, MRNs, phones, e-mails, addresses,
 * dates of birth). None may appear.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyWorld, leaked, type PolicyWorld } from './policy-harness.js';
import { RawPg, serialize } from '../support/raw-pg.js';

let w: PolicyWorld;
beforeAll(async () => {
  w = await startPolicyWorld('phi_bypass', 80);
}, 60_000);
afterAll(async () => w?.close());

/** Attempts written against schema `S`; each is run as one simple Query. */
const attempts: Array<[string, string]> = [
  ['alias', 'SELECT ssn AS harmless FROM S.patients'],
  ['cast to text', 'SELECT ssn::text FROM S.patients'],
  ['cast to int (error-message leak)', 'SELECT ssn::int FROM S.patients'],
  ['division by a PHI cast (error leak)', "SELECT 1 / (replace(ssn, '-', '')::int - replace(ssn, '-', '')::int) FROM S.patients"],
  ['concatenation', "SELECT first_name || ' ' || last_name FROM S.patients"],
  ['function over PHI', 'SELECT upper(email) FROM S.patients'],
  ['format()', "SELECT format('%s', phone) FROM S.patients"],
  ['substring', 'SELECT left(ssn, 11) FROM S.patients'],
  ['CASE on PHI', "SELECT CASE WHEN ssn LIKE '1%' THEN ssn END FROM S.patients"],
  ['CTE', 'WITH c AS (SELECT ssn || \'\' AS s FROM S.patients) SELECT s FROM c'],
  ['recursive CTE', 'WITH RECURSIVE c(s, n) AS (SELECT mrn, 1 FROM S.patients UNION ALL SELECT s || \'\', n + 1 FROM c WHERE n < 2) SELECT s FROM c'],
  ['UNION with a literal', "SELECT ssn FROM S.patients UNION SELECT 'x'"],
  ['UNION ALL of two PHI columns', 'SELECT first_name FROM S.patients UNION ALL SELECT last_name FROM S.patients'],
  ['scalar subquery in SELECT', 'SELECT (SELECT ssn FROM S.patients LIMIT 1)'],
  ['subquery in WHERE (inference)', "SELECT id FROM S.patients WHERE ssn IN (SELECT ssn FROM S.patients WHERE ssn LIKE '2%')"],
  ['filter on a masked column', "SELECT id FROM S.patients WHERE last_name = 'Smith'"],
  ['ORDER BY a masked column', 'SELECT id FROM S.patients ORDER BY ssn'],
  ['GROUP BY a masked column', 'SELECT count(*) FROM S.patients GROUP BY email'],
  ['derived table with computed column', 'SELECT x FROM (SELECT lower(email) AS x FROM S.patients) d'],
  ['derived table then filter', "SELECT x FROM (SELECT ssn AS x FROM S.patients) d WHERE x > ''"],
  ['join on a masked column', 'SELECT a.id FROM S.patients a JOIN S.patients b ON a.ssn = b.ssn'],
  ['row_to_json', 'SELECT row_to_json(p) FROM S.patients p'],
  ['to_jsonb of p.*', 'SELECT to_jsonb(p.*) FROM S.patients p'],
  ['json_agg whole row', 'SELECT json_agg(p) FROM S.patients p'],
  ['array_agg', 'SELECT array_agg(ssn) FROM S.patients'],
  ['string_agg', "SELECT string_agg(first_name, ',') FROM S.patients"],
  ['whole-row reference', 'SELECT p FROM S.patients p'],
  ['composite field access', 'SELECT (p).ssn FROM S.patients p'],
  ['row constructor', 'SELECT ROW(ssn, dob) FROM S.patients'],
  ['view (resolved through its definition)', 'SELECT first_name, last_name, dob FROM S.patient_summary'],
  ['view with computed filter', "SELECT * FROM S.patient_summary WHERE first_name LIKE 'A%'"],
  ['comment tricks', 'SELECT /* harmless */ ssn -- comment\n FROM S.patients'],
  ['quoted identifiers', 'SELECT "ssn"::text FROM "S"."patients"'],
  ['multi-statement string', 'SELECT 1; SELECT ssn::int FROM S.patients'],
  ['dollar-quoted literal beside PHI', 'SELECT $q$x$q$ || ssn FROM S.patients'],
  ['E-string trick', "SELECT E'\\x41' || ssn FROM S.patients"],
  ['cursor over PHI', 'BEGIN; DECLARE c CURSOR FOR SELECT ssn FROM S.patients; FETCH ALL FROM c; COMMIT'],
  ['COPY to stdout', 'COPY (SELECT ssn FROM S.patients) TO STDOUT'],
  ['COPY table to stdout', 'COPY S.patients TO STDOUT'],
  ['EXPLAIN ANALYZE VERBOSE', 'EXPLAIN (ANALYZE, VERBOSE) SELECT ssn::int FROM S.patients'],
  ['catalog statistics', "SELECT most_common_vals::text FROM pg_catalog.pg_stats WHERE tablename = 'patients'"],
  ['pg_stats unqualified', "SELECT histogram_bounds::text FROM pg_stats WHERE attname = 'ssn'"],
  ['other sessions statements', 'SELECT query FROM pg_stat_activity'],
  ['query_to_xml with a PHI query', "SELECT query_to_xml('select ssn from S.patients', true, false, '')"],
  ['set_config search_path', "SELECT set_config('search_path', 'S', false)"],
  ['SET search_path then unqualified', 'SET search_path = S; SELECT ssn::int FROM patients'],
  ['SET ROLE', 'SET ROLE postgres'],
  ['pg_read_file', "SELECT pg_read_file('/etc/passwd')"],
  ['DO block', "DO $$ BEGIN RAISE NOTICE '%', (SELECT string_agg(ssn, ',') FROM S.patients); END $$"],
  ['SQL PREPARE of a masked query', 'PREPARE leak AS SELECT ssn FROM S.patients; EXECUTE leak'],
  ['CREATE TABLE AS copy', 'CREATE TABLE S.exfil AS SELECT ssn FROM S.patients'],
  ['INSERT ... SELECT', 'INSERT INTO S.encounters (id, reason) SELECT id + 100000, ssn FROM S.patients'],
  ['notes table', 'SELECT body FROM S.clinical_notes'],
  ['billing through a join', 'SELECT b.member_id FROM S.billing b'],
  ['lateral subquery', 'SELECT x.s FROM S.patients p, LATERAL (SELECT p.ssn || \'\' AS s) x'],
  ['VALUES with a PHI subquery', 'SELECT * FROM (VALUES ((SELECT ssn FROM S.patients LIMIT 1))) v(x)'],
  ['window function over PHI', 'SELECT first_value(ssn) OVER (ORDER BY id) FROM S.patients'],
  ['pg_notify leak', "SELECT pg_notify('c', ssn) FROM S.patients"],
];

/** The only attempts that are answered (a masked column selected as is); all others are refused. */
const ANSWERED_MASKED = new Set(['alias', 'comment tricks']);

describe('the leak check itself', () => {
  it('finds raw PHI where a role may see it (care-coordination reading names)', async () => {
    const { bytes } = await w.rawQuery('care', `SELECT first_name, last_name, phone FROM ${w.schema}.patients`);
    expect(leaked(bytes, w.secrets).length).toBeGreaterThan(10);
  });
});

describe('bypass attempts by clinical-analytics', () => {
  it(`has at least 40 distinct attempts`, () => {
    expect(attempts.length).toBeGreaterThanOrEqual(40);
  });

  for (const [name, template] of attempts) {
    it(`leaks nothing: ${name}`, async () => {
      const sql = template.replace(/\bS\./g, `${w.schema}.`).replace(/"S"/g, `"${w.schema}"`).replace(/'S'/g, `'${w.schema}'`).replace(/= S;/g, `= ${w.schema};`);
      const { bytes, messages } = await w.rawQuery('analytics', sql);
      expect(leaked(bytes, w.secrets)).toEqual([]);
      const refused = messages.some((m) => m.name === 'error' && m.code === '42501');
      if (ANSWERED_MASKED.has(name)) {
        // Passed straight through to a result column: answered, with every value masked.
        const values = messages.filter((m) => m.name === 'dataRow').flatMap((m) => m.fields as string[]);
        expect(values.length).toBeGreaterThan(0);
        expect(new Set(values)).toEqual(new Set(['[REDACTED]']));
      } else {
        expect(refused).toBe(true);
      }
    });
  }

  it('leaks nothing through prepared statements re-parsed under another name', async () => {
    const raw = await RawPg.login(w.agent.port, await w.tokenFor('analytics'));
    const chunks: Buffer[] = [];
    raw.socket.on('data', (d: Buffer) => chunks.push(d));
    raw.send(Buffer.concat([
      serialize.parse({ name: 'a', text: `SELECT id FROM ${w.schema}.patients`, types: [] }),
      serialize.parse({ name: '', text: `SELECT id FROM ${w.schema}.patients`, types: [] }),
      serialize.sync(),
    ]));
    await raw.untilReady();
    // Re-parse the unnamed statement with a PHI computation, then bind it.
    raw.send(Buffer.concat([
      serialize.parse({ text: `SELECT ssn::int FROM ${w.schema}.patients`, types: [] }),
      serialize.bind({}),
      serialize.execute({}),
      serialize.sync(),
    ]));
    const msgs = await raw.untilReady();
    expect(msgs.find((m) => m.name === 'error')).toMatchObject({ code: '42501' });
    // The named statement still runs, and still only what it was.
    raw.send(Buffer.concat([serialize.bind({ statement: 'a' }), serialize.execute({}), serialize.sync()]));
    const ok = await raw.untilReady();
    expect(ok.filter((m) => m.name === 'dataRow').length).toBe(50);
    raw.end();
    expect(leaked(Buffer.concat(chunks), w.secrets)).toEqual([]);
  });

  it('keeps PHI the client typed into a literal out of the session record', async () => {
    const p = w.rows.patients[0]!;
    const { messages } = await w.rawQuery('analytics', `SELECT id FROM ${w.schema}.patients WHERE ssn = '${String(p.ssn)}' OR last_name = '${String(p.last_name)}'`);
    expect(messages.some((m) => m.name === 'error' && m.code === '42501')).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    await w.agent.events();
    // Only this session's records: other sessions (care coordination) legitimately saw names in clear, and their samples keep them.
    const lines = fs.readFileSync(w.agent.recordingFile, 'utf8').split('\n');
    const sessionId = (JSON.parse(lines.find((l) => l.includes(`from ${w.schema}.patients where ssn=? or last_name=?`))!) as { sessionId: string }).sessionId;
    const recording = Buffer.from(lines.filter((l) => l.includes(sessionId)).join('\n'));
    expect(leaked(recording, w.secrets)).toEqual([]);
    expect(recording.toString()).toContain(`from ${w.schema}.patients where ssn=? or last_name=?`);
  });

  it('leaks nothing through the function-call protocol', async () => {
    const raw = await RawPg.login(w.agent.port, await w.tokenFor('analytics'));
    const chunks: Buffer[] = [];
    raw.socket.on('data', (d: Buffer) => chunks.push(d));
    // FunctionCall for pg_read_file (OID 2624) with one text argument.
    const arg = Buffer.from('/etc/hostname');
    const body = Buffer.alloc(4 + 2 + 2 + 2 + 4 + arg.length + 2);
    let o = 0;
    body.writeInt32BE(2624, o); o += 4;
    body.writeInt16BE(1, o); o += 2; body.writeInt16BE(0, o); o += 2;
    body.writeInt16BE(1, o); o += 2; body.writeInt32BE(arg.length, o); o += 4; arg.copy(body, o); o += arg.length;
    body.writeInt16BE(0, o);
    const frame = Buffer.concat([Buffer.from([0x46, 0, 0, 0, 0]), body]);
    frame.writeInt32BE(frame.length - 1, 1);
    raw.send(frame);
    const msgs = await raw.untilReady();
    expect(msgs.find((m) => m.name === 'error')).toMatchObject({ code: '42501', message: expect.stringMatching(/function-call protocol/) });
    raw.end();
  });
});
