/**
 * Agents and enrollment tokens in PostgreSQL. Tokens are stored only as
 * SHA-256 hashes; a one-time token is consumed atomically, so two agents
 * racing with the same token cannot both enroll.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { SchemaTables } from '../db/schema-tables.js';

export type TokenProblem = 'unknown' | 'expired' | 'used';

export class EnrollmentError extends Error {
  constructor(readonly problem: TokenProblem) {
    super(`enrollment token ${problem}`);
  }
}

export interface AgentRecord {
  id: string;
  name: string;
  labels: Record<string, string>;
  publicKey: Buffer;
  enrolledAt: Date;
  lastSeenAt?: Date;
  appliedVersion?: string;
}

const hash = (token: string): Buffer => createHash('sha256').update(token).digest();

export class AgentRegistry extends SchemaTables {
  /** Returns the plaintext token once; only its hash is kept. */
  async createToken(opts: { ttlMs: number; reusable?: boolean; labels?: Record<string, string> }): Promise<string> {
    const token = `wde_${randomBytes(24).toString('base64url')}`;
    await this.pool.query(`INSERT INTO ${this.t('enrollment_tokens')} (token_hash, labels, reusable, expires_at) VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')`, [
      hash(token),
      JSON.stringify(opts.labels ?? {}),
      opts.reusable ?? false,
      opts.ttlMs,
    ]);
    return token;
  }

  /** Validates and (for one-time tokens) consumes a token; returns the labels it grants. */
  async consume(token: string): Promise<Record<string, string>> {
    const h = hash(token);
    const r = await this.pool.query(
      `UPDATE ${this.t('enrollment_tokens')} SET used_at = now()
       WHERE token_hash = $1 AND expires_at > now() AND (reusable OR used_at IS NULL) RETURNING labels`,
      [h],
    );
    if (r.rows[0]) return r.rows[0].labels as Record<string, string>;
    const why = (await this.pool.query(`SELECT expires_at <= now() AS expired FROM ${this.t('enrollment_tokens')} WHERE token_hash = $1`, [h])).rows[0] as { expired: boolean } | undefined;
    throw new EnrollmentError(!why ? 'unknown' : why.expired ? 'expired' : 'used');
  }

  async register(name: string, labels: Record<string, string>, publicKey: Uint8Array): Promise<string> {
    const id = randomUUID();
    await this.pool.query(`INSERT INTO ${this.t('agents')} (id, name, labels, public_key) VALUES ($1, $2, $3, $4)`, [id, name, JSON.stringify(labels), Buffer.from(publicKey)]);
    return id;
  }

  async get(id: string): Promise<AgentRecord | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
    const r = (await this.pool.query(`SELECT * FROM ${this.t('agents')} WHERE id = $1`, [id])).rows[0] as Record<string, unknown> | undefined;
    return r ? toRecord(r) : undefined;
  }

  async list(): Promise<AgentRecord[]> {
    return (await this.pool.query(`SELECT * FROM ${this.t('agents')} ORDER BY enrolled_at`)).rows.map(toRecord);
  }

  async seen(id: string, appliedVersion?: string): Promise<void> {
    await this.pool.query(`UPDATE ${this.t('agents')} SET last_seen_at = now(), applied_version = coalesce($2, applied_version) WHERE id = $1`, [id, appliedVersion ?? null]);
  }
}

function toRecord(r: Record<string, unknown>): AgentRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    labels: r.labels as Record<string, string>,
    publicKey: r.public_key as Buffer,
    enrolledAt: r.enrolled_at as Date,
    ...(r.last_seen_at ? { lastSeenAt: r.last_seen_at as Date } : {}),
    ...(r.applied_version ? { appliedVersion: String(r.applied_version) } : {}),
  };
}
