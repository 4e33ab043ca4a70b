/**
 * The two ways an append writes its rows (binary COPY on PostgreSQL, one
 * INSERT from arrays for PGlite) store the same bytes, whatever the
 * payloads and session ids hold; a batch PostgreSQL refuses leaves the log
 * as it was and the connection usable.
 */
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AuditChain, type AuditRecordInput } from './hash-chain.js';
import { encodeCopyBinary, emptyChainRows } from './chain-rows.js';
import { services } from '../../../test/support/services.js';

const pool = new pg.Pool({ ...services.postgres, max: 2 });
const publicKey = createPublicKey(generateKeyPairSync('ed25519').privateKey);
const schemas: string[] = [];
let n = 0;

async function freshChain(bulkWrite: 'copy' | 'insert'): Promise<{ chain: AuditChain; schema: string }> {
  const schema = `chain_rows_${process.pid}_${n++}`;
  schemas.push(schema);
  const chain = new AuditChain(pool, schema, { bulkWrite });
  await chain.migrate();
  return { chain, schema };
}

afterEach(async () => {
  for (const s of schemas.splice(0)) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
});
afterAll(async () => pool.end());

const awkward = [
  'tab\there, newline\nthere, return\r, backslash \\ and \\N, quote " and \'',
  'ünïcödé — 患者 — emoji 🧬 and a surrogate pair 𝄞',
  '', // an empty payload is a text of length 0, not NULL
  'x'.repeat(70_000), // over 2 kB: compressed by TOAST, a path rows of ordinary size never take
];

function records(): AuditRecordInput[] {
  const out: AuditRecordInput[] = [];
  awkward.forEach((text, i) => {
    out.push({ sessionId: `session\t${i}\\🧬`, sessionSeq: 1, payload: JSON.stringify({ type: 'statement', text }) });
    out.push({ sessionId: `session\t${i}\\🧬`, sessionSeq: 2, payload: text }); // the chain stores any text it is given
  });
  for (let i = 0; i < 2500; i++) out.push({ sessionId: `bulk-${i % 7}`, sessionSeq: Math.floor(i / 7) + 1, event: { type: 'statement', seq: i } });
  return out;
}

const stored = async (schema: string) =>
  (await pool.query(`SELECT seq::int, session_id, session_seq::int, payload, prev_hash, hash FROM "${schema}".audit_log ORDER BY seq`)).rows as Array<{
    seq: number; session_id: string; session_seq: number; payload: string; prev_hash: Buffer; hash: Buffer;
  }>;

describe('audit rows: binary COPY and INSERT', () => {
  it('store identical rows, byte for byte, and each chain verifies', async () => {
    const copy = await freshChain('copy');
    const insert = await freshChain('insert');
    const input = records();
    expect(await copy.chain.append(input)).toBe(input.length);
    expect(await insert.chain.append(input)).toBe(input.length);
    const [a, b] = [await stored(copy.schema), await stored(insert.schema)];
    expect(a).toHaveLength(input.length);
    expect(a).toEqual(b);
    expect(a[0]!.session_id).toBe('session\t0\\🧬');
    expect(JSON.parse(a[0]!.payload)).toEqual({ type: 'statement', text: awkward[0] });
    expect(a[5]!.payload).toBe('');
    expect(a[7]!.payload).toHaveLength(70_000);
    expect((await copy.chain.verify(publicKey)).ok).toBe(true);
    // Replays are skipped on the COPY path too.
    expect(await copy.chain.append(input.slice(0, 100))).toBe(0);
    expect((await copy.chain.head()).size).toBe(input.length);
  }, 60_000);

  it('a batch PostgreSQL refuses stores nothing, leaves the head, and the next append goes on', async () => {
    const { chain, schema } = await freshChain('copy');
    await chain.append([{ sessionId: 's', sessionSeq: 1, payload: '{"ok":1}' }]);
    const head = await chain.head();
    // A NUL cannot be in a PostgreSQL text: the server rejects the COPY mid-stream.
    await expect(chain.append([{ sessionId: 's', sessionSeq: 2, payload: '{"ok":2}' }, { sessionId: 's', sessionSeq: 3, payload: 'bad\u0000byte' }])).rejects.toThrow(/0x00/);
    expect(await chain.head()).toEqual(head);
    expect(await stored(schema)).toHaveLength(1);
    for (let i = 0; i < 3; i++) await chain.append([{ sessionId: 's', sessionSeq: 2 + i, payload: `{"ok":${2 + i}}` }]); // every pooled connection still works
    expect((await chain.head()).size).toBe(4);
    expect((await chain.verify(publicKey)).ok).toBe(true);
  }, 30_000);

  it('encodes PostgreSQL binary COPY: signature, field counts and lengths, trailer', () => {
    const rows = emptyChainRows();
    rows.seq.push(2 ** 40 + 5);
    rows.sessionId.push('é');
    rows.sessionSeq.push(7);
    rows.payload.push('{}');
    rows.prevHash.push(Buffer.alloc(32, 1));
    rows.hash.push(Buffer.alloc(32, 2));
    const b = encodeCopyBinary(rows);
    expect(b.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
    expect(b.readInt32BE(11)).toBe(0); // flags
    expect(b.readInt32BE(15)).toBe(0); // header extension
    let o = 19;
    expect(b.readInt16BE(o)).toBe(6);
    expect(b.readInt32BE(o + 2)).toBe(8);
    expect(b.readBigInt64BE(o + 6)).toBe(BigInt(2 ** 40 + 5));
    expect(b.readInt32BE(o + 14)).toBe(2); // 'é' is two UTF-8 bytes
    o += 2 + 12 + 4 + 2 + 12 + 4 + 2 + 36 + 36;
    expect(b.readInt16BE(o)).toBe(-1);
    expect(b.length).toBe(o + 2);
    rows.seq[0] = -1;
    expect(() => encodeCopyBinary(rows)).toThrow(/not a sequence number/);
  });
});
