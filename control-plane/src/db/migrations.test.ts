/**
 * Versioned migrations against the real PostgreSQL (and once against the
 * embedded PGlite): a fresh schema, a re-run that changes nothing, two
 * migrators racing, a database newer than the code, an edited migration, a
 * failing one rolled back, and tables from before versioned migrations.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { services } from '../../../test/support/services.js';
import { MIGRATIONS, MigrationError, migrateSchema, type Migration } from './migrations.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { AgentRegistry } from '../distribution/agent-registry.js';

const pools: pg.Pool[] = [];
const schemas: string[] = [];
let n = 0;

function pool(): pg.Pool {
  const p = new pg.Pool({ ...services.postgres, max: 2 });
  pools.push(p);
  return p;
}

function schemaName(): string {
  const s = `mig_test_${process.pid}_${n++}`;
  schemas.push(s);
  return s;
}

afterAll(async () => {
  const p = pool();
  for (const s of schemas) await p.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  for (const x of pools) await x.end();
});

async function tables(p: pg.Pool, schema: string): Promise<string[]> {
  return (await p.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`, [schema])).rows.map((r) => r.table_name);
}

async function recorded(p: pg.Pool, schema: string): Promise<Array<{ id: number; description: string }>> {
  return (await p.query(`SELECT id, description FROM "${schema}".schema_migrations ORDER BY id`)).rows;
}

const ALL_TABLES = ['agents', 'approval_requests', 'approval_votes', 'audit_anchor', 'audit_checkpoints', 'audit_head', 'audit_log', 'audit_segments', 'config_bundles', 'enrollment_tokens', 'schema_migrations'];

/** A migration that takes a while and is not idempotent: two migrators running it at once would collide. */
const slow: Migration = {
  id: MIGRATIONS.length + 1,
  description: 'slow, not idempotent',
  sql: (t) => `SELECT pg_sleep(0.3); CREATE TABLE ${t('approvals')} (id bigserial PRIMARY KEY);`,
};

describe('migrateSchema on PostgreSQL', () => {
  it('creates a fresh schema with every table and records each migration', async () => {
    const p = pool();
    const schema = schemaName();
    const r = await migrateSchema(p, schema);
    expect(r).toEqual({ applied: MIGRATIONS.map((m) => m.id), version: MIGRATIONS.length });
    expect(await tables(p, schema)).toEqual(ALL_TABLES);
    expect(await recorded(p, schema)).toEqual(MIGRATIONS.map((m) => ({ id: m.id, description: m.description })));
    // The audit chain starts at its genesis head.
    expect((await p.query(`SELECT seq, encode(hash, 'hex') AS hash FROM "${schema}".audit_head`)).rows).toEqual([{ seq: '0', hash: '00'.repeat(32) }]);
  });

  it('changes nothing when run again, and keeps the data', async () => {
    const p = pool();
    const schema = schemaName();
    await migrateSchema(p, schema);
    const registry = new AgentRegistry(p, schema);
    const token = await registry.createToken({ ttlMs: 60_000 });
    const before = await p.query(`SELECT id, applied_at FROM "${schema}".schema_migrations ORDER BY id`);
    expect(await migrateSchema(p, schema)).toEqual({ applied: [], version: MIGRATIONS.length });
    expect(await registry.migrate()).toEqual({ applied: [], version: MIGRATIONS.length });
    expect((await p.query(`SELECT id, applied_at FROM "${schema}".schema_migrations ORDER BY id`)).rows).toEqual(before.rows);
    expect(await registry.consume(token)).toEqual({});
  });

  it('lets two control planes starting together take turns: every migration runs exactly once', async () => {
    const schema = schemaName();
    const list = [...MIGRATIONS, slow];
    const progress: string[] = [];
    const [a, b] = await Promise.all([
      migrateSchema(pool(), schema, { migrations: list, log: (m) => progress.push(`a: ${m}`) }),
      migrateSchema(pool(), schema, { migrations: list, log: (m) => progress.push(`b: ${m}`) }),
    ]);
    expect([...a.applied, ...b.applied].sort()).toEqual(list.map((m) => m.id).sort());
    // One did all the work while the other waited for the lock and then found nothing to do.
    expect([a.applied.length, b.applied.length].sort()).toEqual([0, list.length]);
    expect(progress.some((l) => l.includes('waiting for another control plane'))).toBe(true);
    expect((await recorded(pool(), schema)).map((r) => r.id)).toEqual(list.map((m) => m.id));
  });

  it('refuses a database that a newer control plane has migrated', async () => {
    const p = pool();
    const schema = schemaName();
    await migrateSchema(p, schema, { migrations: [...MIGRATIONS, slow] });
    const err = await migrateSchema(p, schema).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect((err as Error).message).toBe(
      `database schema "${schema}" is at migration ${slow.id} ("${slow.description}") but this control plane knows migrations up to ${MIGRATIONS.length}: ` +
        'a newer control plane has upgraded it. Run that version (or newer), or point this one at another schema; refusing to start.',
    );
  });

  it('refuses to run when a migration that was applied has since been edited', async () => {
    const p = pool();
    const schema = schemaName();
    await migrateSchema(p, schema);
    const edited = MIGRATIONS.map((m) => (m.id === 1 ? { ...m, sql: (t: (x: string) => string) => `${m.sql(t)} CREATE INDEX ON ${t('agents')} (name);` } : m));
    await expect(migrateSchema(p, schema, { migrations: edited })).rejects.toThrow(/migration 1 \("agents and enrollment tokens.*"\) was applied with different SQL/);
  });

  it('rolls a failing migration back whole and records nothing for it', async () => {
    const p = pool();
    const schema = schemaName();
    const broken: Migration = { id: MIGRATIONS.length + 1, description: 'half good', sql: (t) => `CREATE TABLE ${t('half')} (id int); SELECT * FROM ${t('missing')};` };
    await expect(migrateSchema(p, schema, { migrations: [...MIGRATIONS, broken] })).rejects.toThrow(new RegExp(`migration ${broken.id} \\(half good\\) failed and was rolled back: relation ".*missing" does not exist`));
    expect(await tables(p, schema)).toEqual(ALL_TABLES);
    expect((await recorded(p, schema)).map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
  });

  it('adopts the tables of a database created before versioned migrations', async () => {
    const p = pool();
    const schema = schemaName();
    const t = (name: string): string => `"${schema}".${name}`;
    // What AgentRegistry.migrate() and AuditChain.migrate() created before migrations were numbered: 1 and 2.
    await p.query(`CREATE SCHEMA "${schema}"; ${MIGRATIONS.filter((m) => m.id <= 2).map((m) => m.sql(t)).join('\n')}`);
    await p.query(`INSERT INTO ${t('agents')} (id, name, labels, public_key) VALUES (gen_random_uuid(), 'old', '{}', '\\x00')`);
    expect((await migrateSchema(p, schema)).applied).toEqual(MIGRATIONS.map((m) => m.id));
    expect((await new AgentRegistry(p, schema).list()).map((a) => a.name)).toEqual(['old']);
  });

  it('rejects a migration list with a gap', async () => {
    await expect(migrateSchema(pool(), schemaName(), { migrations: [MIGRATIONS[0]!, { ...slow, id: 5 }] })).rejects.toThrow('migration list out of order: entry 2 has id 5');
  });
});

describe('migrateSchema on the embedded PostgreSQL (PGlite)', () => {
  it('migrates a fresh database, re-runs as a no-op and refuses a newer one', async () => {
    const embedded = await startEmbeddedPostgres();
    const p = new pg.Pool({ connectionString: embedded.url, max: 1 });
    try {
      expect((await migrateSchema(p, 'warden')).applied).toEqual(MIGRATIONS.map((m) => m.id));
      expect(await tables(p, 'warden')).toEqual(ALL_TABLES);
      expect(await migrateSchema(p, 'warden')).toEqual({ applied: [], version: MIGRATIONS.length });
      await migrateSchema(p, 'warden', { migrations: [...MIGRATIONS, slow] });
      await expect(migrateSchema(p, 'warden')).rejects.toThrow(`is at migration ${slow.id} ("${slow.description}") but this control plane knows migrations up to ${MIGRATIONS.length}`);
    } finally {
      await p.end();
      await embedded.stop();
    }
  }, 30_000);
});
