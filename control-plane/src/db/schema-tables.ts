/** A data-access class whose tables live in one PostgreSQL schema of its own (one per deployment or test). */
import type pg from 'pg';
import { migrateSchema, type MigrationResult } from './migrations.js';

export abstract class SchemaTables {
  constructor(
    protected readonly pool: pg.Pool,
    protected readonly schema: string,
  ) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`invalid schema name "${schema}"`);
  }

  /** Brings the whole schema (every control-plane table, not only this class's) up to date: see db/migrations.ts. */
  migrate(): Promise<MigrationResult> {
    return migrateSchema(this.pool, this.schema);
  }

  /** Schema-qualified, quoted table name. */
  protected t(name: string): string {
    return `"${this.schema}".${name}`;
  }
}
