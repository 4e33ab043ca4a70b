/**
 * The tamper-evident audit log in PostgreSQL: every record's hash covers its
 * position, its canonical encoding and the previous record's hash, so
 * changing, deleting, inserting or reordering any row breaks the chain from
 * that row on; signed checkpoints (log size + head hash, Ed25519) pin the
 * chain so even a truncated tail or a rewritten chain is detected.
 */
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import { SchemaTables } from '../db/schema-tables.js';
import { canonicalJson } from './canonical.js';
import { emptyChainRows, writeChainRows, type BulkWrite } from './chain-rows.js';

export interface AuditRecordInput {
  sessionId: string;
  /** Per-session sequence number: (sessionId, sessionSeq) makes appends idempotent. */
  sessionSeq: number;
  /** The record; or, instead, `payload`: canonicalJson(record) made by the caller (outside the append's lock). */
  event?: unknown;
  payload?: string;
}

export interface Checkpoint {
  id: number;
  size: number;
  headHash: Buffer;
  signedAt: Date;
  keyId: string;
  signature: Buffer;
}

export type ProblemKind = 'modified' | 'deleted' | 'inserted' | 'reordered' | 'truncated' | 'bad-checkpoint';

export interface VerifyResult {
  ok: boolean;
  checked: number;
  checkpointsVerified: number;
  problem?: { kind: ProblemKind; seq: number; detail: string };
}

export const GENESIS = Buffer.alloc(32);

export function recordHash(prev: Buffer, seq: number, canonical: string): Buffer {
  const pos = Buffer.allocUnsafe(8);
  pos.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), 0);
  pos.writeUInt32BE(seq >>> 0, 4);
  return createHash('sha256').update(prev).update(pos).update(canonical, 'utf8').digest();
}

/** The bytes a checkpoint signature covers. */
export function checkpointBytes(size: number, head: Buffer): Buffer {
  const n = Buffer.alloc(8);
  n.writeBigUInt64BE(BigInt(size));
  return Buffer.concat([Buffer.from('warden.audit.checkpoint\0'), n, head]);
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export class AuditChain extends SchemaTables {
  /** How appends write their rows: COPY on PostgreSQL; 'insert' for PGlite, which has no COPY on its socket (chain-rows.ts). */
  private readonly bulkWrite: BulkWrite;

  constructor(pool: pg.Pool, schema: string, opts: { bulkWrite?: BulkWrite } = {}) {
    super(pool, schema);
    this.bulkWrite = opts.bulkWrite ?? 'copy';
  }

  /** Where the stored chain starts once a prefix was pruned: a signed checkpoint's size and head hash. */
  async anchor(): Promise<{ seq: number; hash: Buffer; checkpointId: number } | undefined> {
    const row = (await this.pool.query(`SELECT seq, hash, checkpoint_id FROM ${this.t('audit_anchor')} WHERE id = 1`)).rows[0] as { seq: string; hash: Buffer; checkpoint_id: string } | undefined;
    return row ? { seq: Number(row.seq), hash: row.hash, checkpointId: Number(row.checkpoint_id) } : undefined;
  }

  /**
   * Appends a batch in one transaction (the head row lock serialises writers across replicas).
   * Records already present (same session id + sequence) are skipped: replays are harmless.
   * Returns how many were new. Resolves only after the commit is durable.
   */
  async append(records: AuditRecordInput[]): Promise<number> {
    if (records.length === 0) return 0;
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const head = (await client.query(`SELECT seq, hash FROM ${this.t('audit_head')} WHERE id = 1 FOR UPDATE`)).rows[0] as { seq: string; hash: Buffer };
      const existing = await client.query(
        `SELECT session_id, session_seq FROM ${this.t('audit_log')} WHERE (session_id, session_seq) IN (SELECT sid, sseq FROM json_to_recordset($1::json) AS x(sid text, sseq bigint))`,
        [JSON.stringify(records.map((r) => ({ sid: r.sessionId, sseq: r.sessionSeq })))],
      );
      const seen = new Set(existing.rows.map((r: { session_id: string; session_seq: string }) => `${r.session_id}#${r.session_seq}`));
      let seq = Number(head.seq);
      let prev = head.hash;
      const rows = emptyChainRows();
      for (const r of records) {
        const k = `${r.sessionId}#${r.sessionSeq}`;
        if (seen.has(k)) continue;
        seen.add(k);
        seq++;
        const payload = r.payload ?? canonicalJson(r.event);
        const hash = recordHash(prev, seq, payload);
        rows.seq.push(seq);
        rows.sessionId.push(r.sessionId);
        rows.sessionSeq.push(r.sessionSeq);
        rows.payload.push(payload);
        rows.prevHash.push(prev);
        rows.hash.push(hash);
        prev = hash;
      }
      if (rows.seq.length > 0) {
        await writeChainRows(client, this.t('audit_log'), rows, this.bulkWrite);
        await client.query(`UPDATE ${this.t('audit_head')} SET seq = $1, hash = $2 WHERE id = 1`, [seq, prev]);
      }
      await client.query('COMMIT');
      return rows.seq.length;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Size of the log (the last record's position) and the head hash. */
  async head(): Promise<{ size: number; hash: Buffer }> {
    const row = (await this.pool.query(`SELECT seq, hash FROM ${this.t('audit_head')} WHERE id = 1`)).rows[0] as { seq: string; hash: Buffer };
    return { size: Number(row.seq), hash: row.hash };
  }

  /** Size the latest checkpoint signed (0 without one). */
  async lastCheckpointSize(): Promise<number> {
    const { rows } = await this.pool.query(`SELECT coalesce(max(size), 0) AS n FROM ${this.t('audit_checkpoints')}`);
    return Number(rows[0].n);
  }

  /** Signs the current head: (size, head hash) under the control plane's Ed25519 key. */
  async checkpoint(privateKey: KeyObject): Promise<Checkpoint> {
    const head = (await this.pool.query(`SELECT seq, hash FROM ${this.t('audit_head')} WHERE id = 1`)).rows[0] as { seq: string; hash: Buffer };
    const size = Number(head.seq);
    const keyId = keyIdOf(createPublicKey(privateKey));
    const signature = sign(null, checkpointBytes(size, head.hash), privateKey);
    const row = (
      await this.pool.query(`INSERT INTO ${this.t('audit_checkpoints')} (size, head_hash, key_id, signature) VALUES ($1, $2, $3, $4) RETURNING id, signed_at`, [size, head.hash, keyId, signature])
    ).rows[0] as { id: string; signed_at: Date };
    return { id: Number(row.id), size, headHash: head.hash, signedAt: row.signed_at, keyId, signature };
  }

  /** Names what happened at the first broken record by trying its neighbour in its place. */
  private async diagnose(seq: number, prev: Buffer, row: { payload: string; hash: Buffer }): Promise<NonNullable<VerifyResult['problem']>> {
    const next = (await this.pool.query(`SELECT payload, hash FROM ${this.t('audit_log')} WHERE seq = $1`, [seq + 1])).rows[0] as { payload: string; hash: Buffer } | undefined;
    if (next) {
      const nextHere = recordHash(prev, seq, next.payload);
      if (nextHere.equals(row.hash) || nextHere.equals(next.hash)) {
        const rowThere = recordHash(nextHere, seq + 1, row.payload);
        if (rowThere.equals(row.hash) || rowThere.equals(next.hash)) {
          return { kind: 'reordered', seq, detail: `records ${seq} and ${seq + 1} were swapped` };
        }
        return { kind: 'inserted', seq, detail: `record ${seq} was inserted: record ${seq + 1} belongs at ${seq}` };
      }
    }
    return { kind: 'modified', seq, detail: `record ${seq} does not match its hash: its content was changed` };
  }

  /** Number of records in the log. */
  async size(): Promise<number> {
    return Number((await this.pool.query(`SELECT seq FROM ${this.t('audit_head')} WHERE id = 1`)).rows[0]?.seq ?? 0);
  }

  /** The log in order, `batch` records at a time (reports read it whole without holding it in memory). */
  async *scan(batch = 2000): AsyncGenerator<Array<{ seq: number; payload: string; recordedAt: Date }>> {
    let after = 0;
    for (;;) {
      const { rows } = await this.pool.query<{ seq: string; payload: string; recorded_at: Date }>(`SELECT seq, payload, recorded_at FROM ${this.t('audit_log')} WHERE seq > $1 ORDER BY seq LIMIT $2`, [after, batch]);
      if (rows.length === 0) return;
      after = Number(rows.at(-1)!.seq);
      yield rows.map((r) => ({ seq: Number(r.seq), payload: r.payload, recordedAt: r.recorded_at }));
    }
  }

  async checkpoints(): Promise<Checkpoint[]> {
    const rows = (await this.pool.query(`SELECT id, size, head_hash, signed_at, key_id, signature FROM ${this.t('audit_checkpoints')} ORDER BY id`)).rows;
    return rows.map((r: Record<string, unknown>) => ({ id: Number(r.id), size: Number(r.size), headHash: r.head_hash as Buffer, signedAt: r.signed_at as Date, keyId: String(r.key_id), signature: r.signature as Buffer }));
  }

  /**
   * Walks the chain from the start (or from a verified checkpoint) in order, recomputing every hash,
   * and checks every signed checkpoint against it. Names the first record that is wrong.
   */
  async verify(publicKey: KeyObject, opts: { fromCheckpoint?: number; batch?: number } = {}): Promise<VerifyResult> {
    const checkpoints = await this.checkpoints();
    for (const c of checkpoints) {
      if (!verify(null, checkpointBytes(c.size, c.headHash), publicKey, c.signature)) {
        return { ok: false, checked: 0, checkpointsVerified: 0, problem: { kind: 'bad-checkpoint', seq: c.size, detail: `checkpoint ${c.id} has an invalid signature` } };
      }
    }
    // A pruned prefix is trusted only as far as a signed checkpoint vouches for its head.
    const anchor = await this.anchor();
    const anchored = anchor ? checkpoints.find((c) => c.size === anchor.seq && c.headHash.equals(anchor.hash)) : undefined;
    if (anchor && !anchored) {
      return { ok: false, checked: 0, checkpointsVerified: 0, problem: { kind: 'deleted', seq: 1, detail: `records 1..${anchor.seq} are gone and their anchor matches no signed checkpoint` } };
    }
    const chosen = opts.fromCheckpoint !== undefined ? checkpoints.find((c) => c.id === opts.fromCheckpoint) : undefined;
    if (opts.fromCheckpoint !== undefined && !chosen) throw new Error(`no checkpoint ${opts.fromCheckpoint}`);
    if (chosen && anchored && chosen.size < anchored.size) throw new Error(`checkpoint ${chosen.id} lies in the pruned prefix (records 1..${anchored.size}); start at checkpoint ${anchored.id} or later`);
    const start = chosen ?? anchored;
    let expectedSeq = (start?.size ?? 0) + 1;
    let prev = start?.headHash ?? GENESIS;
    const bySize = new Map(checkpoints.map((c) => [c.size, c]));
    let verifiedCps = start ? 1 : 0;
    let checked = 0;
    const batch = opts.batch ?? 5000;
    for (;;) {
      const { rows } = await this.pool.query(`SELECT seq, payload, prev_hash, hash FROM ${this.t('audit_log')} WHERE seq >= $1 ORDER BY seq LIMIT $2`, [expectedSeq, batch]);
      if (rows.length === 0) break;
      for (const r of rows as Array<{ seq: string; payload: string; prev_hash: Buffer; hash: Buffer }>) {
        const seq = Number(r.seq);
        if (seq !== expectedSeq) {
          return { ok: false, checked, checkpointsVerified: verifiedCps, problem: { kind: 'deleted', seq: expectedSeq, detail: `records ${expectedSeq}..${seq - 1} are missing` } };
        }
        const recomputed = recordHash(prev, seq, r.payload);
        if (!r.prev_hash.equals(prev) || !recomputed.equals(r.hash)) {
          return { ok: false, checked, checkpointsVerified: verifiedCps, problem: await this.diagnose(seq, prev, r) };
        }
        const cp = bySize.get(seq);
        if (cp) {
          if (!cp.headHash.equals(r.hash)) {
            return { ok: false, checked, checkpointsVerified: verifiedCps, problem: { kind: 'modified', seq, detail: `the chain up to ${seq} differs from signed checkpoint ${cp.id}` } };
          }
          verifiedCps++;
        }
        prev = r.hash;
        expectedSeq++;
        checked++;
      }
    }
    const size = expectedSeq - 1;
    const beyond = checkpoints.find((c) => c.size > size);
    if (beyond) {
      return { ok: false, checked, checkpointsVerified: verifiedCps, problem: { kind: 'truncated', seq: size + 1, detail: `checkpoint ${beyond.id} covered ${beyond.size} records but the log ends at ${size}` } };
    }
    return { ok: true, checked, checkpointsVerified: verifiedCps };
  }
}
