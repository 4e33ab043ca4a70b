/**
 * Tamper tests against real PostgreSQL rows: change one byte, delete a row,
 * swap two rows, insert a row, truncate the tail after a checkpoint, forge a
 * checkpoint — each detected and located.
 */
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditChain } from './hash-chain.js';
import { services } from '../../../test/support/services.js';

const pool = new pg.Pool({ ...services.postgres, max: 4 });
const { privateKey } = generateKeyPairSync('ed25519');
const publicKey = createPublicKey(privateKey);
let schema: string;
let chain: AuditChain;
let n = 0;

beforeEach(async () => {
  schema = `audit_test_${process.pid}_${n++}`;
  chain = new AuditChain(pool, schema);
  await chain.migrate();
  const events = Array.from({ length: 40 }, (_, i) => ({ sessionId: `s${i % 4}`, sessionSeq: Math.floor(i / 4) + 1, event: { type: 'statement', text: `SELECT ${i}`, rows: i } }));
  await chain.append(events.slice(0, 20));
  await chain.checkpoint(privateKey);
  await chain.append(events.slice(20));
});
afterEach(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
});
afterAll(async () => pool.end());

const q = (sql: string, params: unknown[] = []) => pool.query(sql.replaceAll('$S', `"${schema}"`), params);

describe('audit hash chain', () => {
  it('verifies an untouched log with its signed checkpoint, and replays are not appended twice', async () => {
    expect(await chain.verify(publicKey)).toEqual({ ok: true, checked: 40, checkpointsVerified: 1 });
    expect(await chain.append([{ sessionId: 's0', sessionSeq: 1, event: { type: 'statement', text: 'SELECT 0', rows: 0 } }])).toBe(0);
    expect((await q('SELECT count(*)::int AS n FROM $S.audit_log')).rows[0].n).toBe(40);
  });

  it('a replay mixing stored and new records, out of order and with gaps, appends only the new ones, in the order sent', async () => {
    // s1 holds sequences 1..10 from beforeEach; s9 is new.
    const batch = [5, 12, 3, 11, 10, 15].map((seq) => ({ sessionId: 's1', sessionSeq: seq, event: { type: 'statement', seq } }));
    batch.splice(2, 0, { sessionId: 's9', sessionSeq: 1, event: { type: 'statement', seq: 1 } }, { sessionId: 's1', sessionSeq: 12, event: { type: 'statement', seq: 12 } });
    expect(await chain.append(batch)).toBe(4);
    const tail = (await q('SELECT session_id, session_seq::int FROM $S.audit_log WHERE seq > 40 ORDER BY seq')).rows;
    expect(tail).toEqual([
      { session_id: 's1', session_seq: 12 },
      { session_id: 's9', session_seq: 1 },
      { session_id: 's1', session_seq: 11 },
      { session_id: 's1', session_seq: 15 },
    ]);
    expect((await chain.verify(publicKey)).ok).toBe(true);
  });

  it('detects one changed byte and names the record', async () => {
    await q(`UPDATE $S.audit_log SET payload = replace(payload, 'SELECT 17', 'SELECT 18') WHERE seq = 18`);
    expect((await chain.verify(publicKey)).problem).toMatchObject({ kind: 'modified', seq: 18 });
  });

  it('detects a deleted row', async () => {
    await q('DELETE FROM $S.audit_log WHERE seq = 25');
    expect((await chain.verify(publicKey)).problem).toMatchObject({ kind: 'deleted', seq: 25 });
  });

  it('detects two swapped rows', async () => {
    await q(`UPDATE $S.audit_log a SET payload = b.payload FROM $S.audit_log b WHERE (a.seq, b.seq) IN ((30, 31), (31, 30))`);
    expect((await chain.verify(publicKey)).problem).toMatchObject({ kind: 'reordered', seq: 30 });
  });

  it('detects an inserted row', async () => {
    await q('UPDATE $S.audit_log SET seq = seq + 1000 WHERE seq >= 33');
    await q('UPDATE $S.audit_log SET seq = seq - 999 WHERE seq >= 1033');
    await q(`INSERT INTO $S.audit_log (seq, session_id, session_seq, payload, prev_hash, hash) SELECT 33, 'forged', 1, '{"type":"statement"}', hash, hash FROM $S.audit_log WHERE seq = 32`);
    expect((await chain.verify(publicKey)).problem).toMatchObject({ kind: 'inserted', seq: 33 });
  });

  it('detects a tail truncated after a checkpoint, even with the head rewritten', async () => {
    await chain.checkpoint(privateKey); // covers all 40
    await q('DELETE FROM $S.audit_log WHERE seq > 35');
    await q(`UPDATE $S.audit_head SET seq = 35, hash = (SELECT hash FROM $S.audit_log WHERE seq = 35)`);
    expect((await chain.verify(publicKey)).problem).toMatchObject({ kind: 'truncated', seq: 36 });
  });

  it('detects a chain recomputed by someone without the signing key', async () => {
    // Rewriting a record and every hash after it is possible without a key; the signed checkpoint is not.
    const rows = (await q('SELECT seq, payload FROM $S.audit_log ORDER BY seq')).rows as Array<{ seq: string; payload: string }>;
    const { recordHash } = await import('./hash-chain.js');
    let prev: Buffer = Buffer.alloc(32);
    for (const r of rows) {
      const payload = Number(r.seq) === 5 ? r.payload.replace('SELECT 4', 'SELECT 9') : r.payload;
      const h = recordHash(prev, Number(r.seq), payload);
      await q('UPDATE $S.audit_log SET payload = $1, prev_hash = $2, hash = $3 WHERE seq = $4', [payload, prev, h, r.seq]);
      prev = h;
    }
    expect((await chain.verify(publicKey)).problem).toMatchObject({ kind: 'modified', seq: 20, detail: expect.stringMatching(/signed checkpoint/) });
  });

  it('refuses a checkpoint not signed by the control plane key', async () => {
    await q(`UPDATE $S.audit_checkpoints SET size = size - 1`);
    expect((await chain.verify(publicKey)).problem).toMatchObject({ kind: 'bad-checkpoint' });
  });
});

describe('warden audit verify', () => {
  it('exits 0 on an intact log and 1, naming the record, on a tampered one', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const fs = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const keyFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warden-key-')), 'cp.pub');
    fs.writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }));
    const url = `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`;
    const run = (): Promise<{ code: number; stdout: string }> =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', 'audit', 'verify', '--database-url', url, '--schema', schema, '--public-key', keyFile]).then(
        (r) => ({ code: 0, stdout: r.stdout }),
        (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
      );
    expect(await run()).toMatchObject({ code: 0, stdout: expect.stringMatching(/verified: 40 records, 1 signed checkpoints/) });
    await q(`UPDATE $S.audit_log SET payload = replace(payload, 'SELECT 7', 'SELECT 8') WHERE seq = 8`);
    expect(await run()).toMatchObject({ code: 1, stdout: expect.stringMatching(/FAILED verification at record 8: modified/) });
  }, 30_000);
});
