/**
 * Entry point of statement analysis: the real PostgreSQL parser
 * (libpg-query, compiled to WASM) and the lineage walk, one analysis per
 * statement of a (possibly multi-statement) string.
 */
import { loadModule, parseSync } from 'libpg-query';
import { LineageAnalyzer } from './lineage.js';
import type { CatalogView, StatementAnalysis } from './types.js';

let ready: Promise<void> | null = null;
let loaded = false;

/** The parser is WASM: load it once before the first statement arrives. */
export function loadParser(): Promise<void> {
  ready ??= loadModule().then(() => {
    loaded = true;
  });
  return ready;
}

export class ParseError extends Error {}

/* eslint-disable @typescript-eslint/no-explicit-any -- the parse tree is dynamic JSON */
function parseStatements(sql: string): any[] {
  if (!loaded) throw new ParseError('the SQL parser is not loaded yet');
  let tree: any;
  try {
    tree = parseSync(sql);
  } catch (err) {
    throw new ParseError(`cannot parse statement: ${(err as Error).message}`);
  }
  return (tree.stmts ?? []).map((s: any) => s.stmt);
}

export function analyzeSql(sql: string, catalog: CatalogView): StatementAnalysis[] {
  return parseStatements(sql).map((stmt) => new LineageAnalyzer(catalog, parseStatements).statement(stmt));
}
