/**
 * Minimum necessary, per role, on real queries through the agent with
 * node-postgres: what each hospital role sees, what it is refused, and
 * what the session record says about each decision.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyWorld, leaked, type PolicyWorld } from './policy-harness.js';
import { directClient } from '../support/agent-harness.js';

let w: PolicyWorld;
beforeAll(async () => {
  w = await startPolicyWorld('phi_roles');
}, 60_000);
afterAll(async () => w?.close());

const first = () => [...w.rows.patients].sort((a, b) => Number(a.id) - Number(b.id))[0]!;

describe('clinical-analytics (de-identified reads)', () => {
  it('sees patients with identifiers masked, dates generalised and ZIPs cut to three digits', async () => {
    const c = await w.client('analytics');
    const r = await c.query(`SELECT id, mrn, first_name, last_name, ssn, dob, zip, sex, city FROM ${w.schema}.patients ORDER BY id LIMIT 3`);
    const p = first();
    const row = r.rows[0];
    expect(row.id).toBe(String(p.id));
    expect(row.mrn).toMatch(/^tok_[0-9a-f]{24}$/);
    expect([row.first_name, row.last_name, row.ssn, row.city]).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]', '[REDACTED]']);
    expect(row.dob).toBe(String(p.dob).slice(0, 4));
    expect(row.zip).toMatch(/^(\d{3}|000)\*\*$/);
    expect(row.sex).toBe(p.sex);
    // Masked columns are described as text, whatever their real type.
    expect(r.fields.find((f) => f.name === 'dob')!.dataTypeID).toBe(25);
    expect(leaked(Buffer.from(JSON.stringify(r.rows)), w.secrets)).toEqual([]);
    await c.end();
  });

  it('gets the same token for the same MRN, so joins and counts still work', async () => {
    const c = await w.client('analytics');
    const a = await c.query(`SELECT mrn FROM ${w.schema}.patients WHERE id = $1`, [first().id]);
    const b = await c.query(`SELECT mrn FROM ${w.schema}.patients WHERE id = ${first().id}`);
    expect(a.rows[0].mrn).toBe(b.rows[0].mrn);
    await c.end();
  });

  it('is refused tables outside its role with 42501 naming the table, and the session stays usable', async () => {
    const c = await w.client('analytics');
    await expect(c.query(`SELECT insurer FROM ${w.schema}.billing`)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining(`${w.schema}.billing`) });
    await expect(c.query(`SELECT body FROM ${w.schema}.clinical_notes`)).rejects.toMatchObject({ code: '42501' });
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await c.end();
  });

  it('is refused statement kinds it was not granted', async () => {
    const c = await w.client('analytics');
    await expect(c.query(`UPDATE ${w.schema}.encounters SET department = 'x' WHERE id = 1`)).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/UPDATE statements are not permitted/) });
    await expect(c.query(`CREATE TABLE ${w.schema}.exfil (x text)`)).rejects.toMatchObject({ code: '42501' });
    await c.end();
  });

  it('has results cut at its row limit with a warning, the connection staying in a good state', async () => {
    const c = await w.client('analytics');
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    const r = await c.query(`SELECT id FROM ${w.schema}.encounters`);
    expect(r.rows).toHaveLength(50);
    expect(r.rowCount).toBe(50);
    expect(notices.join('\n')).toMatch(/truncated to 50 rows/);
    const prepared = await c.query({ text: `SELECT id, dob FROM ${w.schema}.patients WHERE id > $1`, values: [0] });
    expect(prepared.rows).toHaveLength(50);
    expect((await c.query('SELECT 2 AS ok')).rows[0].ok).toBe(2);
    await c.end();
  });

  it('masks through the extended protocol, named statements and binary results', async () => {
    const c = await w.client('analytics');
    for (let i = 0; i < 2; i++) {
      const r = await c.query({ name: 'by-id', text: `SELECT ssn, dob FROM ${w.schema}.patients WHERE id = $1`, values: [first().id] });
      expect(r.rows[0]).toEqual({ ssn: '[REDACTED]', dob: String(first().dob).slice(0, 4) });
    }
    const bin = await c.query({ text: `SELECT dob, first_name FROM ${w.schema}.patients WHERE id = $1`, values: [first().id], binary: true } as pg.QueryConfig);
    const values = Object.values(bin.rows[0] as Record<string, unknown>).map((v) => (Buffer.isBuffer(v) ? v.toString() : String(v)));
    expect(values).toEqual([String(first().dob).slice(0, 4), '[REDACTED]']);
    await c.end();
  });

  it('keeps transaction semantics: a refused statement fails the transaction like any error', async () => {
    const c = await w.client('analytics');
    await c.query('BEGIN');
    await expect(c.query(`SELECT * FROM ${w.schema}.billing`)).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('ROLLBACK');
    expect((await c.query('SELECT 3 AS ok')).rows[0].ok).toBe(3);
    await c.end();
  });
});

describe('billing', () => {
  it('reads billing with member ids tokenised, may update, and never sees clinical notes', async () => {
    const c = await w.client('billing');
    const r = await c.query(`SELECT b.id, b.member_id, p.mrn, p.last_name FROM ${w.schema}.billing b JOIN ${w.schema}.encounters e ON e.id = b.encounter_id JOIN ${w.schema}.patients p ON p.id = e.patient_id ORDER BY b.id LIMIT 5`);
    expect(r.rows[0].member_id).toMatch(/^tok_/);
    expect(r.rows[0].mrn).toMatch(/^tok_/);
    expect(r.rows[0].last_name).toMatch(/^\*+.{2}$/);
    const u = await c.query(`UPDATE ${w.schema}.billing SET status = 'paid' WHERE id = $1`, [r.rows[0].id]);
    expect(u.rowCount).toBe(1);
    await expect(c.query(`SELECT body FROM ${w.schema}.clinical_notes`)).rejects.toMatchObject({ code: '42501' });
    await expect(c.query(`SELECT reason FROM ${w.schema}.encounters`)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('encounters.reason') });
    await expect(c.query(`SELECT ssn FROM ${w.schema}.patients`)).rejects.toMatchObject({ code: '42501' });
    await expect(c.query(`DELETE FROM ${w.schema}.billing`)).rejects.toMatchObject({ code: '42501' });
    await c.end();
  });
});

describe('care-coordination', () => {
  it('sees contact details, SSNs as last four, e-mail domains, and notes with identifiers detected and masked', async () => {
    const c = await w.client('care');
    const p = first();
    const r = await c.query(`SELECT first_name, phone, ssn, email FROM ${w.schema}.patients WHERE id = $1`, [p.id]);
    expect(r.rows[0].first_name).toBe(p.first_name);
    expect(r.rows[0].phone).toBe(p.phone);
    expect(r.rows[0].ssn).toBe('#######' + String(p.ssn).slice(-4));
    expect(r.rows[0].email).toBe('***@' + String(p.email).split('@')[1]);
    const notes = await c.query(`SELECT body FROM ${w.schema}.clinical_notes ORDER BY id LIMIT 40`);
    const ssns = w.rows.patients.map((x) => String(x.ssn));
    const emails = w.rows.patients.map((x) => String(x.email));
    const all = notes.rows.map((n) => n.body as string).join('\n');
    expect(ssns.filter((s) => all.includes(s))).toEqual([]);
    expect(emails.filter((e) => all.includes(e))).toEqual([]);
    expect(all).toMatch(/\[SSN\]|\[EMAIL\]|\[PHONE\]|\[MRN\]/);
    await c.end();
  });
});

describe('oncall-dba', () => {
  it('may read the catalog but no patient data, nor column statistics', async () => {
    const c = await w.client('dba');
    const n = await c.query(`SELECT count(*)::int AS n FROM pg_catalog.pg_class WHERE relnamespace = '${w.schema}'::regnamespace`);
    expect(n.rows[0].n).toBeGreaterThan(4);
    await expect(c.query(`SELECT * FROM ${w.schema}.patients`)).rejects.toMatchObject({ code: '42501' });
    await expect(c.query(`SELECT most_common_vals::text FROM pg_catalog.pg_stats WHERE schemaname = '${w.schema}'`)).rejects.toMatchObject({ code: '42501' });
    await c.end();
  });
});

describe('functions defined in the database', () => {
  it('cannot be used to read PHI: refused by default, redacted where the role says so', async () => {
    const d = await directClient();
    await d.query(`CREATE FUNCTION ${w.schema}.leak_ssn() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM ${w.schema}.patients LIMIT 1'`);
    await d.end();
    const analytics = await w.client('analytics');
    await expect(analytics.query(`SELECT ${w.schema}.leak_ssn()`)).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/origin Warden cannot establish/) });
    await analytics.end();
    const billing = await w.client('billing');
    expect((await billing.query(`SELECT ${w.schema}.leak_ssn() AS x`)).rows).toEqual([{ x: '[REDACTED]' }]);
    await expect(billing.query(`SELECT id FROM ${w.schema}.billing WHERE ${w.schema}.leak_ssn() LIKE '1%'`)).rejects.toMatchObject({ code: '42501' });
    await billing.end();
  });
});

describe('schema changes', () => {
  it('re-reads the catalog after DDL: a new view over patients is resolved and masked at once', async () => {
    const dba = await w.client('dba');
    await dba.query(`CREATE VIEW ${w.schema}.new_view AS SELECT id, ssn AS tax_id FROM ${w.schema}.patients`);
    await dba.end();
    const c = await w.client('analytics');
    let rows: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 20 && rows.length === 0; i++) {
      rows = await c.query(`SELECT tax_id FROM ${w.schema}.new_view LIMIT 3`).then((r) => r.rows, () => []);
      if (rows.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(rows.map((r) => r.tax_id)).toEqual(['[REDACTED]', '[REDACTED]', '[REDACTED]']);
    await c.end();
  });
});

describe('the session record', () => {
  it('records each decision with its rule ids, masked columns, masked value count and the policy version', async () => {
    const c = await w.client('analytics');
    await c.query(`SELECT id, ssn FROM ${w.schema}.patients ORDER BY id LIMIT 4`);
    await c.query(`SELECT * FROM ${w.schema}.billing`).catch(() => undefined);
    await c.end();
    await new Promise((r) => setTimeout(r, 200));
    const events = await w.agent.events();
    // Under a PHI-restricted role the record keeps the statement's shape, literals replaced.
    const masked = events.find((e) => e.type === 'statement' && e.text === `select id,ssn from ${w.schema}.patients order by id limit ?`);
    expect(masked).toMatchObject({ decision: 'mask', rows: 4, maskedValues: 4, maskedColumns: [{ column: `${w.schema}.patients.ssn`, strategy: 'redact' }] });
    expect(masked && 'bundleVersion' in masked && masked.bundleVersion).toMatch(/^[0-9a-f]{40}$/);
    const denied = events.find((e) => e.type === 'statement' && e.text.includes('.billing') && e.decision === 'deny');
    expect(denied).toMatchObject({ error: { code: '42501' }, ruleIds: [expect.stringMatching(/role\/clinical-analytics/)] });
  });
});
