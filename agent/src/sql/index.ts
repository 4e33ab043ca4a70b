export { normalizeSql, LexError, type Normalized } from './lexer.js';
export { analyzeSql, loadParser, ParseError } from './analyze.js';
export { PgCatalog, type QueryFn } from './pg-catalog.js';
export type { CatalogView, ColumnRef, OutputColumn, RelationInfo, StatementAnalysis, StatementFlags, StatementKindName } from './types.js';
