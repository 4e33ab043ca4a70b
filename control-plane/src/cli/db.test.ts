/** `warden db status|migrate` as a user runs it: the real CLI process against the real PostgreSQL. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { services } from '../../../test/support/services.js';
import { MIGRATIONS, migrateSchema } from '../db/migrations.js';

const run = promisify(execFile);
const pool = new pg.Pool({ ...services.postgres, max: 1 });
const url = `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`;
const schema = `cli_db_${process.pid}`;

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE; DROP SCHEMA IF EXISTS "${schema}_newer" CASCADE`);
  await pool.end();
});

describe('warden db', () => {
  it('reports pending migrations (exit 1), applies them (exit 0), then reports the schema current', async () => {
    const before = await warden(['db', 'status', '--database-url', url, '--schema', schema]);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain(`pending    1                            ${MIGRATIONS[0]!.description}`);
    expect(before.stdout).toContain(`schema "${schema}": ${MIGRATIONS.length} pending`);
    // status only reads: nothing was created.
    expect((await pool.query(`SELECT to_regnamespace($1) AS s`, [schema])).rows[0].s).toBeNull();

    const migrated = await warden(['db', 'migrate', '--database-url', url, '--schema', schema]);
    expect(migrated).toMatchObject({ code: 0 });
    expect(migrated.stdout).toContain(`schema "${schema}": applying migration 1 (${MIGRATIONS[0]!.description})`);
    expect(migrated.stdout).toContain(`schema "${schema}" migrated to ${MIGRATIONS.length}`);
    expect((await warden(['db', 'migrate', '--database-url', url, '--schema', schema])).stdout).toBe(`schema "${schema}" is already at ${MIGRATIONS.length}\n`);

    const after = await warden(['db', 'status', '--database-url', url, '--schema', schema, '--json']);
    expect(after.code).toBe(0);
    const json = JSON.parse(after.stdout) as { current: boolean; applied: Array<{ id: number; edited: boolean }>; pending: unknown[] };
    expect(json).toMatchObject({ current: true, pending: [], unknown: [] });
    expect(json.applied.map((a) => [a.id, a.edited])).toEqual(MIGRATIONS.map((m) => [m.id, false]));
  }, 30_000);

  it('names a database migrated by a newer control plane (exit 1) and refuses to migrate it', async () => {
    const newer = `${schema}_newer`;
    await migrateSchema(pool, newer, { migrations: [...MIGRATIONS, { id: MIGRATIONS.length + 1, description: 'approvals', sql: (t) => `CREATE TABLE ${t('approvals')} (id int)` }] });
    const status = await warden(['db', 'status', '--database-url', url, '--schema', newer]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(new RegExp(`NEWER +${MIGRATIONS.length + 1} +\\S+ +approvals`));
    expect(status.stdout).toContain(`was migrated by a newer control plane (${MIGRATIONS.length + 1} > ${MIGRATIONS.length})`);
    const migrate = await warden(['db', 'migrate', '--database-url', url, '--schema', newer]);
    expect(migrate.code).toBe(1);
    expect(migrate.stderr).toContain(`warden db migrate: database schema "${newer}" is at migration ${MIGRATIONS.length + 1} ("approvals")`);
  }, 30_000);

  it('exits 2 on usage errors', async () => {
    expect((await warden(['db', 'status'])).code).toBe(2);
    expect((await warden(['db', 'drop', '--database-url', url])).code).toBe(2);
  }, 30_000);
});
