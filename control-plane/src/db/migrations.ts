/**
 * The control plane's database schema, as an ordered list of numbered
 * migrations. To change the schema, append one entry to MIGRATIONS (next id,
 * a description, its SQL) — never edit or reorder one that has shipped: a
 * database records the checksum of every migration it ran and the control
 * plane refuses to start if an applied migration's SQL changed.
 *
 * `migrateSchema` applies what is missing, each migration in its own
 * transaction together with its row in `schema_migrations`, while holding a
 * PostgreSQL advisory lock keyed by the schema name, so control-plane
 * replicas starting at once take turns instead of racing; the second one
 * finds everything applied. A database that has migrations this code does
 * not know (a newer control plane ran against it) is refused with a clear
 * error rather than run by code that does not understand it.
 *
 * The embedded PostgreSQL (PGlite) supports advisory locks, but all of its
 * connections share its single backend session, so there the lock excludes
 * nothing; it need not — the embedded database lives inside one control-plane
 * process, which never runs two migrators at once.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';

/** Quotes a table name into the schema being migrated: t('agents') → "warden".agents */
export type TableRef = (table: string) => string;

export interface Migration {
  /** 1, 2, 3, … in order, without gaps. */
  id: number;
  description: string;
  /** The statements, with every table qualified through `t` (the schema name is chosen per deployment). */
  sql(t: TableRef): string;
}

/** The audit chain's genesis hash: 32 zero bytes (GENESIS in audit/hash-chain.ts). */
const GENESIS_HASH_HEX = '00'.repeat(32);

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    description: 'agents and enrollment tokens (stored as hashes)',
    // IF NOT EXISTS: databases created before versioned migrations already have these tables; they are adopted.
    sql: (t) => `
      CREATE TABLE IF NOT EXISTS ${t('enrollment_tokens')} (
        token_hash bytea PRIMARY KEY, labels jsonb NOT NULL DEFAULT '{}', reusable boolean NOT NULL,
        expires_at timestamptz NOT NULL, used_at timestamptz, created_at timestamptz NOT NULL DEFAULT now());
      CREATE TABLE IF NOT EXISTS ${t('agents')} (
        id uuid PRIMARY KEY, name text NOT NULL, labels jsonb NOT NULL, public_key bytea NOT NULL,
        enrolled_at timestamptz NOT NULL DEFAULT now(), last_seen_at timestamptz, applied_version text);`,
  },
  {
    id: 2,
    description: 'audit log hash chain, its head and signed checkpoints',
    sql: (t) => `
      CREATE TABLE IF NOT EXISTS ${t('audit_log')} (
        seq bigint PRIMARY KEY,
        session_id text NOT NULL,
        session_seq bigint NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        payload text NOT NULL,
        prev_hash bytea NOT NULL,
        hash bytea NOT NULL,
        UNIQUE (session_id, session_seq)
      );
      CREATE TABLE IF NOT EXISTS ${t('audit_head')} (id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash bytea NOT NULL);
      INSERT INTO ${t('audit_head')} VALUES (1, 0, '\\x${GENESIS_HASH_HEX}') ON CONFLICT DO NOTHING;
      CREATE TABLE IF NOT EXISTS ${t('audit_checkpoints')} (
        id bigserial PRIMARY KEY, size bigint NOT NULL, head_hash bytea NOT NULL,
        signed_at timestamptz NOT NULL DEFAULT now(), key_id text NOT NULL, signature bytea NOT NULL
      );`,
  },
  {
    id: 3,
    description: 'good config bundles by commit, so a restarted control plane serves the last one at once',
    sql: (t) => `
      CREATE TABLE ${t('config_bundles')} (
        version text PRIMARY KEY,
        compiler_version text NOT NULL,
        commit_info jsonb NOT NULL,
        bundle bytea NOT NULL,
        warnings jsonb NOT NULL DEFAULT '[]',
        applied_at timestamptz NOT NULL DEFAULT now());
      CREATE INDEX ON ${t('config_bundles')} (applied_at DESC);`,
  },
  {
    id: 4,
    description: 'approval requests and their votes (signed records of every decision)',
    sql: (t) => `
      CREATE TABLE ${t('approval_requests')} (
        id text PRIMARY KEY,
        agent_id text NOT NULL,
        session_id text NOT NULL,
        rule_id text NOT NULL,
        requester text NOT NULL,
        request bytea NOT NULL,
        state text NOT NULL DEFAULT 'pending',
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        decided_at timestamptz,
        record bytea,
        signature bytea,
        key_id text);
      CREATE INDEX ON ${t('approval_requests')} (state, expires_at);
      CREATE TABLE ${t('approval_votes')} (
        request_id text NOT NULL REFERENCES ${t('approval_requests')} (id),
        subject text NOT NULL,
        issuer text NOT NULL,
        vote text NOT NULL,
        comment text NOT NULL DEFAULT '',
        via text NOT NULL,
        decided_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (request_id, issuer, subject));`,
  },
  {
    id: 5,
    description: 'session search index, sealed segments exported to immutable storage, and the anchor a pruned chain starts from',
    sql: (t) => `
      -- Session search (session-query.ts) starts from each session's first record.
      CREATE INDEX audit_log_session_firsts ON ${t('audit_log')} (recorded_at) WHERE session_seq = 1;
      -- Sealed segments written to immutable storage (segments.ts): only these may ever be pruned.
      CREATE TABLE ${t('audit_segments')} (
        first_seq bigint PRIMARY KEY, last_seq bigint NOT NULL UNIQUE, checkpoint_id bigint NOT NULL,
        file text NOT NULL, file_sha256 bytea NOT NULL, exported_at timestamptz NOT NULL DEFAULT now());
      -- After a prune (retention.ts): the signed checkpoint the remaining chain starts from.
      CREATE TABLE ${t('audit_anchor')} (
        id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash bytea NOT NULL, checkpoint_id bigint NOT NULL, pruned_at timestamptz NOT NULL DEFAULT now());`,
  },
];

export class MigrationError extends Error {}

export interface MigrationResult {
  /** Ids applied by this call (empty when the schema was already current). */
  applied: number[];
  /** The schema's version afterwards: the highest applied id. */
  version: number;
}

export interface MigrateOptions {
  migrations?: readonly Migration[];
  /** How long to wait for another migrator holding the lock (default 60 s). */
  lockTimeoutMs?: number;
  /** Progress: which migration runs, and when waiting for another replica. */
  log?: (message: string) => void;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** A stable 64-bit advisory-lock key per schema, so migrators of different schemas never wait on each other. */
export function migrationLockKey(schema: string): bigint {
  return createHash('sha256').update(`warden.migrations\0${schema}`).digest().readBigInt64BE(0);
}

/** Checksum of a migration's SQL independent of the schema it is applied to. */
export function migrationChecksum(m: Migration): string {
  return createHash('sha256').update(m.sql((name) => `"<schema>".${name}`)).digest('hex');
}

function checkOrder(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (m.id !== i + 1) throw new MigrationError(`migration list out of order: entry ${i + 1} has id ${m.id}`);
  });
}

export interface MigrationStatus {
  applied: Array<{ id: number; description: string; appliedAt: Date; edited: boolean }>;
  pending: Array<{ id: number; description: string }>;
  /** Applied by a newer control plane: this code does not know them. */
  unknown: Array<{ id: number; description: string; appliedAt: Date }>;
}

/** What has been applied to `schema` and what is pending, read only (no lock, nothing created). */
export async function migrationStatus(pool: pg.Pool, schema: string, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationStatus> {
  if (!SCHEMA_NAME.test(schema)) throw new MigrationError(`invalid schema name "${schema}"`);
  checkOrder(migrations);
  const exists = (await pool.query<{ t: string | null }>(`SELECT to_regclass($1) AS t`, [`"${schema}".schema_migrations`])).rows[0]!.t;
  const rows = exists
    ? (await pool.query<{ id: number; description: string; checksum: string; applied_at: Date }>(`SELECT id, description, checksum, applied_at FROM "${schema}".schema_migrations ORDER BY id`)).rows
    : [];
  const have = new Set(rows.map((r) => r.id));
  return {
    applied: rows.filter((r) => r.id <= migrations.length).map((r) => ({ id: r.id, description: r.description, appliedAt: r.applied_at, edited: migrationChecksum(migrations[r.id - 1]!) !== r.checksum })),
    pending: migrations.filter((m) => !have.has(m.id)).map((m) => ({ id: m.id, description: m.description })),
    unknown: rows.filter((r) => r.id > migrations.length).map((r) => ({ id: r.id, description: r.description, appliedAt: r.applied_at })),
  };
}

/** Brings `schema` up to the newest migration. Safe to call from several processes at once. */
export async function migrateSchema(pool: pg.Pool, schema: string, opts: MigrateOptions = {}): Promise<MigrationResult> {
  if (!SCHEMA_NAME.test(schema)) throw new MigrationError(`invalid schema name "${schema}"`);
  const migrations = opts.migrations ?? MIGRATIONS;
  checkOrder(migrations);
  const t: TableRef = (name) => `"${schema}".${name}`;
  const key = migrationLockKey(schema).toString();
  const client = await pool.connect();
  let locked = false;
  let broken: Error | undefined;
  try {
    // A session-level lock (not a transaction-level one) spans the several transactions below.
    const deadline = Date.now() + (opts.lockTimeoutMs ?? 60_000);
    for (let waited = false; ; waited = true) {
      locked = (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key])).rows[0]!.ok;
      if (locked) break;
      if (Date.now() > deadline) throw new MigrationError(`schema "${schema}": another control plane has been migrating it for over ${opts.lockTimeoutMs ?? 60_000} ms; giving up`);
      if (!waited) opts.log?.(`schema "${schema}": waiting for another control plane to finish migrating`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}";
      CREATE TABLE IF NOT EXISTS ${t('schema_migrations')} (
        id int PRIMARY KEY, description text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = (await client.query<{ id: number; description: string; checksum: string }>(`SELECT id, description, checksum FROM ${t('schema_migrations')} ORDER BY id`)).rows;
    const known = migrations.length;
    const unknown = done.filter((r) => r.id > known);
    if (unknown.length > 0) {
      const newest = unknown.at(-1)!;
      throw new MigrationError(
        `database schema "${schema}" is at migration ${newest.id} ("${newest.description}") but this control plane knows migrations up to ${known}: ` +
          `a newer control plane has upgraded it. Run that version (or newer), or point this one at another schema; refusing to start.`,
      );
    }
    for (const row of done) {
      const m = migrations[row.id - 1]!;
      if (migrationChecksum(m) !== row.checksum) {
        throw new MigrationError(`database schema "${schema}": migration ${m.id} ("${m.description}") was applied with different SQL than this control plane's; migrations must never be edited once shipped — add a new one`);
      }
    }
    const applied: number[] = [];
    const have = new Set(done.map((r) => r.id));
    for (const m of migrations) {
      if (have.has(m.id)) continue;
      opts.log?.(`schema "${schema}": applying migration ${m.id} (${m.description})`);
      try {
        await client.query('BEGIN');
        await client.query(m.sql(t));
        await client.query(`INSERT INTO ${t('schema_migrations')} (id, description, checksum) VALUES ($1, $2, $3)`, [m.id, m.description, migrationChecksum(m)]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new MigrationError(`schema "${schema}": migration ${m.id} (${m.description}) failed and was rolled back: ${(err as Error).message}`);
      }
      applied.push(m.id);
    }
    return { applied, version: known };
  } finally {
    // If the unlock fails the connection is discarded, which ends its session and with it the lock.
    if (locked) await client.query('SELECT pg_advisory_unlock($1::bigint)', [key]).catch((err: Error) => (broken = err));
    client.release(broken);
  }
}
