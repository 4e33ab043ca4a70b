/**
 * Approval requests and votes in the control plane's PostgreSQL, shared by
 * every replica. A vote and the decision it completes happen in one
 * transaction with the request row locked, so two approvers on two replicas
 * can never both finalise a request, and nothing is decided twice.
 */
import type pg from 'pg';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ApprovalRequestSchema, type ApprovalRequest } from '../../../proto/src/index.js';
import { SchemaTables } from '../db/schema-tables.js';

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'expired' | 'withdrawn';

export interface Vote {
  subject: string;
  issuer: string;
  vote: 'approve' | 'deny';
  comment: string;
  decidedAt: Date;
  via: 'api' | 'chat';
}

export interface StoredApproval {
  id: string;
  agentId: string;
  request: ApprovalRequest;
  state: ApprovalState;
  createdAt: Date;
  expiresAt: Date;
  decidedAt?: Date;
  votes: Vote[];
  /** With a final state: the signed ApprovalRecord. */
  signed?: { record: Buffer; signature: Buffer; keyId: string };
}

interface Row {
  id: string;
  agent_id: string;
  request: Buffer;
  state: ApprovalState;
  created_at: Date;
  expires_at: Date;
  decided_at: Date | null;
  record: Buffer | null;
  signature: Buffer | null;
  key_id: string | null;
  votes: Array<{ subject: string; issuer: string; vote: 'approve' | 'deny'; comment: string; decided_at: string; via: 'api' | 'chat' }> | null;
}

export class VoteRefused extends Error {
  constructor(
    readonly status: 403 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

export class ApprovalStore extends SchemaTables {
  private select(where: string): string {
    return `SELECT r.*, (SELECT json_agg(json_build_object('subject', v.subject, 'issuer', v.issuer, 'vote', v.vote, 'comment', v.comment, 'decided_at', v.decided_at, 'via', v.via) ORDER BY v.decided_at)
              FROM ${this.t('approval_votes')} v WHERE v.request_id = r.id) AS votes
            FROM ${this.t('approval_requests')} r ${where}`;
  }

  private static toStored(r: Row): StoredApproval {
    return {
      id: r.id,
      agentId: r.agent_id,
      request: fromBinary(ApprovalRequestSchema, r.request),
      state: r.state,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
      ...(r.decided_at ? { decidedAt: r.decided_at } : {}),
      votes: (r.votes ?? []).map((v) => ({ subject: v.subject, issuer: v.issuer, vote: v.vote, comment: v.comment, decidedAt: new Date(v.decided_at), via: v.via })),
      ...(r.record && r.signature && r.key_id ? { signed: { record: r.record, signature: r.signature, keyId: r.key_id } } : {}),
    };
  }

  /** Stores a request; a request already known (an agent resending after a reconnect) is left as it is. Returns true if new. */
  async insert(agentId: string, req: ApprovalRequest, expiresAt: Date): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO ${this.t('approval_requests')} (id, agent_id, session_id, rule_id, requester, request, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
      [req.id, agentId, req.sessionId, req.ruleId, req.identity?.subject ?? '', Buffer.from(toBinary(ApprovalRequestSchema, req)), expiresAt],
    );
    return r.rowCount === 1;
  }

  async get(id: string): Promise<StoredApproval | undefined> {
    const r = await this.pool.query<Row>(this.select('WHERE r.id = $1'), [id]);
    return r.rows[0] ? ApprovalStore.toStored(r.rows[0]) : undefined;
  }

  async list(state?: ApprovalState, limit = 200): Promise<StoredApproval[]> {
    const r = await this.pool.query<Row>(this.select(`${state ? 'WHERE r.state = $1' : ''} ORDER BY r.created_at DESC LIMIT ${Math.max(1, Math.min(limit, 1000))}`), state ? [state] : []);
    return r.rows.map(ApprovalStore.toStored);
  }

  /** Pending requests whose time is up. */
  async due(now: Date): Promise<string[]> {
    const r = await this.pool.query<{ id: string }>(`SELECT id FROM ${this.t('approval_requests')} WHERE state = 'pending' AND expires_at <= $1`, [now]);
    return r.rows.map((x) => x.id);
  }

  /**
   * Runs `step` with the request locked. `step` sees the request and its votes and may add a vote
   * and/or finalise it; whatever it returns is returned. Refusals (VoteRefused) roll everything back.
   */
  async withLocked<T>(
    id: string,
    step: (a: StoredApproval, tx: { vote(v: Omit<Vote, 'decidedAt'>): Promise<Vote>; finalize(state: Exclude<ApprovalState, 'pending'>, decidedAt: Date, signed: { record: Uint8Array; signature: Uint8Array; keyId: string }): Promise<void> }) => Promise<T>,
  ): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SELECT 1 FROM ${this.t('approval_requests')} WHERE id = $1 FOR UPDATE`, [id]);
      const r = await client.query<Row>(this.select('WHERE r.id = $1'), [id]);
      if (!r.rows[0]) throw new VoteRefused(404, `no approval request ${id}`);
      const current = ApprovalStore.toStored(r.rows[0]);
      const out = await step(current, {
        vote: async (v) => {
          const ins = await client.query<{ decided_at: Date }>(
            `INSERT INTO ${this.t('approval_votes')} (request_id, subject, issuer, vote, comment, via) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING RETURNING decided_at`,
            [id, v.subject, v.issuer, v.vote, v.comment, v.via],
          );
          if (!ins.rows[0]) throw new VoteRefused(409, `${v.subject} has already decided on request ${id}`);
          const vote = { ...v, decidedAt: ins.rows[0].decided_at };
          current.votes.push(vote);
          return vote;
        },
        finalize: async (state, decidedAt, signed) => {
          await client.query(
            `UPDATE ${this.t('approval_requests')} SET state = $2, decided_at = $3, record = $4, signature = $5, key_id = $6 WHERE id = $1 AND state = 'pending'`,
            [id, state, decidedAt, Buffer.from(signed.record), Buffer.from(signed.signature), signed.keyId],
          );
        },
      });
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}
