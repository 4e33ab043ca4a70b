/**
 * The demo's patient database: PGlite (PostgreSQL compiled to WASM) filled
 * with the synthetic PHI data set and served over the PostgreSQL protocol on
 * a loopback port, so `make demo` needs no database server. The agent in
 * front of it is the same agent that fronts a real PostgreSQL.
 */
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { generatePhi, schemaSql, PHI_TABLES, type PhiRows } from '../../test/fixtures/phi/generate.js';

export interface PhiDatabase {
  host: string;
  port: number;
  rows: PhiRows;
  stop(): Promise<void>;
}

export async function startPhiDatabase(opts: { patients: number; schema: string; seed?: number }): Promise<PhiDatabase> {
  const db = await PGlite.create();
  const rows = generatePhi({ patients: opts.patients, seed: opts.seed ?? 7 });
  await db.exec(await schemaSql(opts.schema));
  // One statement per table: the rows travel as one JSON document (PGlite's socket server has no COPY).
  for (const table of PHI_TABLES) {
    await db.query(`INSERT INTO "${opts.schema}".${table} SELECT * FROM json_populate_recordset(NULL::"${opts.schema}".${table}, $1::json)`, [JSON.stringify(rows[table])]);
  }
  await db.exec(`ANALYZE`);
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 16 });
  await server.start();
  const [host, port] = server.getServerConn().split(':') as [string, string];
  return {
    host,
    port: Number(port),
    rows,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
