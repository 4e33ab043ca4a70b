/**
 * The target database's catalog as the analysis needs it: relations with
 * their columns and view definitions, looked up by name (statements) and
 * by OID + attribute number (RowDescription fields). Loaded over the
 * agent's own connection; `refresh` after DDL bumps `version`, which
 * invalidates cached analyses.
 */
import type { CatalogView, RelationInfo } from './types.js';

export type QueryFn = (sql: string) => Promise<{ rows: Array<Record<string, unknown>> }>;

const KIND: Record<string, RelationInfo['kind']> = { r: 'table', v: 'view', m: 'matview', f: 'foreign', p: 'partitioned' };

const RELATIONS_SQL = `
SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
       CASE WHEN c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            THEN pg_get_viewdef(c.oid) END AS viewdef,
       coalesce(json_agg(json_build_object('name', a.attname, 'attnum', a.attnum, 'type', a.atttypid::int8)
                ORDER BY a.attnum) FILTER (WHERE a.attnum > 0), '[]') AS columns
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
GROUP BY c.oid, n.nspname, c.relname, c.relkind`;

export class PgCatalog implements CatalogView {
  private byName = new Map<string, RelationInfo>();
  private byOidMap = new Map<number, RelationInfo>();
  private path: string[] = ['public'];
  private builtinFunctions = new Set<string>();
  private loadedVersion = 0;
  private refreshing: Promise<void> | null = null;

  constructor(private readonly query: QueryFn) {}

  get version(): number {
    return this.loadedVersion;
  }

  get searchPath(): readonly string[] {
    return this.path;
  }

  relation(schema: string | undefined, name: string): RelationInfo | undefined {
    if (schema !== undefined) return this.byName.get(`${schema}.${name}`);
    for (const s of ['pg_catalog', ...this.path]) {
      const r = this.byName.get(`${s}.${name}`);
      if (r) return r;
    }
    return undefined;
  }

  /**
   * Anything that is not a built-in (pg_catalog) function counts as defined in the database —
   * including one created after the catalog was read, so an unknown function fails closed.
   */
  isUserFunction(name: string): boolean {
    const dot = name.lastIndexOf('.');
    if (dot < 0) return !this.builtinFunctions.has(name);
    return name.slice(0, dot) !== 'pg_catalog' || !this.builtinFunctions.has(name.slice(dot + 1));
  }

  byOid(oid: number): RelationInfo | undefined {
    return this.byOidMap.get(oid);
  }

  attribute(tableOid: number, attnum: number): { schema: string; table: string; column: string } | undefined {
    const rel = this.byOidMap.get(tableOid);
    const col = rel?.columns.find((c) => c.attnum === attnum);
    return rel && col ? { schema: rel.schema, table: rel.name, column: col.name } : undefined;
  }

  /** Reloads everything; concurrent callers share one reload. */
  refresh(): Promise<void> {
    this.refreshing ??= this.load().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    // One connection runs one query at a time: issue them in turn.
    const rels = await this.query(RELATIONS_SQL);
    const path = await this.query('SELECT current_schemas(false) AS path');
    const funcs = await this.query(`SELECT DISTINCT p.proname AS name FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace`);
    const byName = new Map<string, RelationInfo>();
    const byOid = new Map<number, RelationInfo>();
    for (const r of rels.rows) {
      const cols = (typeof r.columns === 'string' ? JSON.parse(r.columns) : r.columns) as Array<{ name: string; attnum: number; type: number }>;
      const info: RelationInfo = {
        schema: String(r.schema),
        name: String(r.name),
        oid: Number(r.oid),
        kind: KIND[String(r.kind)] ?? 'other',
        columns: cols.map((c) => ({ name: c.name, attnum: c.attnum, typeOid: Number(c.type) })),
        ...(r.viewdef ? { viewDefinition: String(r.viewdef) } : {}),
      };
      byName.set(`${info.schema}.${info.name}`, info);
      byOid.set(info.oid, info);
    }
    const p = path.rows[0]?.path;
    this.path = (Array.isArray(p) ? p : String(p ?? 'public').replace(/[{}]/g, '').split(',')).map(String).filter((s) => s !== 'pg_catalog');
    this.builtinFunctions = new Set(funcs.rows.map((f) => String(f.name)));
    this.byName = byName;
    this.byOidMap = byOid;
    this.loadedVersion++;
  }
}
