/**
 * Retention: the audit log keeps records at least six years (HIPAA's
 * documentation retention); a longer period may be configured, never a
 * shorter one. Pruning deletes only records that were exported in sealed
 * segments (segments.ts) and are older than the retention, always up to a
 * segment's end, which is a signed checkpoint: that checkpoint becomes the
 * chain's anchor, so what remains still verifies from a signed head.
 */
import { SchemaTables } from '../db/schema-tables.js';

const DAY_MS = 86_400_000;
const YEAR_MS = 365.25 * DAY_MS;
export const MIN_RETENTION_MS = 6 * YEAR_MS;
export const DEFAULT_RETENTION = '6y';

/** "6y", "7y", "2557d" → milliseconds; refuses anything shorter than six years. */
export function parseRetention(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(y|years?|d|days?)\s*$/i.exec(text);
  if (!m) throw new Error(`audit.retention "${text}": write it as years or days, e.g. 6y, 7y or 2557d`);
  const ms = Number(m[1]) * (m[2]!.toLowerCase().startsWith('y') ? YEAR_MS : DAY_MS);
  if (ms < MIN_RETENTION_MS) throw new Error(`audit.retention "${text}" is shorter than the six-year minimum; records younger than six years are never deleted`);
  return ms;
}

export interface PruneResult {
  /** Records deleted. */
  pruned: number;
  /** The signed checkpoint the stored chain now starts after (unchanged if nothing was pruned). */
  anchor?: { seq: number; checkpointId: number };
  /** Why nothing (more) could be pruned. */
  reason?: string;
}

export class AuditRetention extends SchemaTables {
  /** Deletes exported records older than the retention, up to the end of the last segment whose records are all older. */
  async prune(retentionMs: number): Promise<PruneResult> {
    if (!(retentionMs >= MIN_RETENTION_MS)) throw new Error('retention shorter than the six-year minimum: nothing pruned');
    const cutoff = new Date(Date.now() - retentionMs);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      // Serialise with appends and other prunes.
      await client.query(`SELECT 1 FROM ${this.t('audit_head')} WHERE id = 1 FOR UPDATE`);
      const anchorRow = (await client.query(`SELECT seq, checkpoint_id FROM ${this.t('audit_anchor')} WHERE id = 1`)).rows[0] as { seq: string; checkpoint_id: string } | undefined;
      const from = Number(anchorRow?.seq ?? 0);
      const segments = (
        await client.query(
          `SELECT s.last_seq, s.checkpoint_id, c.head_hash, c.size,
                  (SELECT max(recorded_at) FROM ${this.t('audit_log')} l WHERE l.seq BETWEEN s.first_seq AND s.last_seq) AS newest
           FROM ${this.t('audit_segments')} s JOIN ${this.t('audit_checkpoints')} c ON c.id = s.checkpoint_id
           WHERE s.last_seq > $1 ORDER BY s.last_seq`,
          [from],
        )
      ).rows as Array<{ last_seq: string; checkpoint_id: string; head_hash: Buffer; size: string; newest: Date | null }>;
      let upTo: (typeof segments)[number] | undefined;
      for (const s of segments) {
        if (s.newest === null || s.newest >= cutoff || Number(s.size) !== Number(s.last_seq)) break;
        upTo = s;
      }
      if (!upTo) {
        await client.query('ROLLBACK');
        const reason = segments.length === 0 ? 'no exported segment beyond what was already pruned' : `the oldest unpruned segment holds records newer than ${cutoff.toISOString()}`;
        return { pruned: 0, ...(anchorRow ? { anchor: { seq: from, checkpointId: Number(anchorRow.checkpoint_id) } } : {}), reason };
      }
      const seq = Number(upTo.last_seq);
      await client.query(
        `INSERT INTO ${this.t('audit_anchor')} (id, seq, hash, checkpoint_id) VALUES (1, $1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash, checkpoint_id = EXCLUDED.checkpoint_id, pruned_at = now()`,
        [seq, upTo.head_hash, upTo.checkpoint_id],
      );
      const deleted = await client.query(`DELETE FROM ${this.t('audit_log')} WHERE seq <= $1`, [seq]);
      await client.query('COMMIT');
      return { pruned: deleted.rowCount ?? 0, anchor: { seq, checkpointId: Number(upTo.checkpoint_id) } };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}
