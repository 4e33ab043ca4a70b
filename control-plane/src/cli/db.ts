/**
 * `warden db status` and `warden db migrate`: the control plane's schema
 * version, for operators who migrate before a rollout (e.g. with a role that
 * may run DDL while the control plane runs with less) or check a database.
 * Exit codes: 0 current / migrated, 1 pending, newer than this version, or
 * failed, 2 usage.
 */
import pg from 'pg';
import { MIGRATIONS, MigrationError, migrateSchema, migrationStatus } from '../db/migrations.js';

export interface DbCommandOptions {
  action: string | undefined;
  url: string | undefined;
  schema: string;
  json: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export async function dbCommand(o: DbCommandOptions): Promise<number> {
  if (o.action !== 'status' && o.action !== 'migrate') {
    o.err.write('warden db: status or migrate\n');
    return 2;
  }
  if (!o.url) {
    o.err.write(`warden db ${o.action}: --database-url (or WARDEN_DATABASE_URL) is required\n`);
    return 2;
  }
  const pool = new pg.Pool({ connectionString: o.url, max: 1 });
  try {
    if (o.action === 'migrate') {
      try {
        const r = await migrateSchema(pool, o.schema, { log: (m) => void (o.json ? undefined : o.out.write(`${m}\n`)) });
        if (o.json) o.out.write(JSON.stringify({ schema: o.schema, ...r }) + '\n');
        else o.out.write(r.applied.length ? `schema "${o.schema}" migrated to ${r.version}\n` : `schema "${o.schema}" is already at ${r.version}\n`);
        return 0;
      } catch (err) {
        if (!(err instanceof MigrationError)) throw err;
        o.err.write(`warden db migrate: ${err.message}\n`);
        return 1;
      }
    }
    const s = await migrationStatus(pool, o.schema);
    const edited = s.applied.filter((a) => a.edited);
    const current = s.pending.length === 0 && s.unknown.length === 0 && edited.length === 0;
    if (o.json) {
      o.out.write(JSON.stringify({ schema: o.schema, known: MIGRATIONS.length, current, ...s }, null, 2) + '\n');
    } else {
      for (const a of s.applied) o.out.write(`applied  ${String(a.id).padStart(3)}  ${a.appliedAt.toISOString()}  ${a.description}${a.edited ? '  [EDITED since applied]' : ''}\n`);
      for (const p of s.pending) o.out.write(`pending  ${String(p.id).padStart(3)}  ${' '.repeat(24)}  ${p.description}\n`);
      for (const u of s.unknown) o.out.write(`NEWER    ${String(u.id).padStart(3)}  ${u.appliedAt.toISOString()}  ${u.description}\n`);
      o.out.write(
        s.unknown.length > 0
          ? `schema "${o.schema}" was migrated by a newer control plane (${s.unknown.at(-1)!.id} > ${MIGRATIONS.length}): this version refuses to run on it\n`
          : current
            ? `schema "${o.schema}" is current (${MIGRATIONS.length} migrations)\n`
            : `schema "${o.schema}": ${s.pending.length} pending${edited.length ? `, ${edited.length} edited since applied` : ''}\n`,
      );
    }
    return current ? 0 : 1;
  } finally {
    await pool.end();
  }
}
