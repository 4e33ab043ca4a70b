/**
 * The agent's own connection to a target for reading its catalog (tables,
 * columns, views), with the target's credentials and TLS settings. Kept
 * open so a refresh after DDL is one round trip.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { PgCatalog, loadParser } from '../sql/index.js';
import type { UpstreamTarget } from '../engines/postgres/upstream-connect.js';

export interface CatalogConnection {
  target: string;
  catalog: PgCatalog;
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export async function connectCatalog(target: UpstreamTarget, log: Logger): Promise<CatalogConnection> {
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    database: target.database,
    user: target.user,
    ...(target.password !== undefined ? { password: target.password } : {}),
    application_name: 'warden-agent-catalog',
    connectionTimeoutMillis: target.connectTimeoutMs,
    ...(target.tls.mode === 'disable'
      ? {}
      : {
          ssl: {
            ...(target.tls.ca ? { ca: target.tls.ca } : {}),
            rejectUnauthorized: target.tls.mode === 'verify-full',
            ...(target.tls.serverName ? { servername: target.tls.serverName } : {}),
          },
        }),
  });
  client.on('error', (err) => log.warn({ err: err.message }, 'catalog connection error'));
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`cannot read the catalog of target ${target.name}: ${(err as Error).message}`);
  }
  const catalog = new PgCatalog((sql) => client.query(sql));
  await catalog.refresh();
  return {
    target: target.name,
    catalog,
    refresh: async () => {
      try {
        await catalog.refresh();
      } catch (err) {
        log.error({ err: (err as Error).message }, 'catalog refresh failed');
      }
    },
    close: () => client.end().catch(() => undefined),
  };
}

/**
 * One catalog connection per target, shared by every bundle version (the
 * database's schema does not change with the policy). Opened on first use;
 * a failed open is retried by the next session.
 */
export class CatalogPool {
  private readonly open = new Map<string, Promise<CatalogConnection>>();

  constructor(private readonly log: Logger) {}

  get(target: UpstreamTarget): Promise<CatalogConnection> {
    let c = this.open.get(target.name);
    if (!c) {
      c = (async () => {
        await loadParser();
        return connectCatalog(target, this.log.child({ target: target.name }));
      })();
      c.catch(() => this.open.delete(target.name));
      this.open.set(target.name, c);
    }
    return c;
  }

  refresh(target: string): void {
    void this.open.get(target)?.then((c) => c.refresh(), () => undefined);
  }

  async close(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((c) => c.then((x) => x.close(), () => undefined)));
  }
}
