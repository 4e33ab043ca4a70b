/** How `warden` subcommands that read the control plane's PostgreSQL find it: one set of flags for all of them. */
import pg from 'pg';

export const databaseOptions = {
  'database-url': { type: 'string' },
  schema: { type: 'string' },
} as const;

export const DATABASE_HELP = `      --database-url URL  the control plane's PostgreSQL (default: $WARDEN_DATABASE_URL)
      --schema NAME       schema of the control plane's tables (default: warden)`;

export class UsageError extends Error {}

/** Runs `fn` with a small pool on the control plane's database; the pool is closed afterwards. */
export async function withDatabase<T>(values: { 'database-url'?: string; schema?: string }, command: string, fn: (pool: pg.Pool, schema: string) => Promise<T>): Promise<T> {
  const url = values['database-url'] ?? process.env.WARDEN_DATABASE_URL;
  if (!url) throw new UsageError(`${command}: --database-url (or WARDEN_DATABASE_URL) is required`);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    return await fn(pool, values.schema ?? 'warden');
  } finally {
    await pool.end();
  }
}
