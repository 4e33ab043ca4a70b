/** What the policy layer learns about one statement. */

export interface ColumnRef {
  schema: string;
  table: string;
  /** `*` stands for the whole row (every column). */
  column: string;
}

export interface OutputColumn {
  name: string;
  /** Base-table columns this result column is computed from (through views, CTEs, subqueries). */
  sources: ColumnRef[];
  /** True only when the output is one source column passed through unchanged. */
  direct: boolean;
  /** True when the value comes from something the analysis cannot see into (a function result without column arguments is not opaque). */
  opaque?: boolean;
  /** Computed with a literal or bind parameter in it: the value may carry what the client typed. */
  fromInput?: boolean;
}

export type StatementKindName =
  | 'select' | 'insert' | 'update' | 'delete' | 'merge' | 'ddl' | 'truncate' | 'copy-out' | 'copy-in'
  | 'dcl' | 'transaction' | 'session' | 'explain' | 'call' | 'maintenance' | 'other';

export interface StatementFlags {
  setRole?: boolean;
  setsSearchPath?: boolean;
  alterSystem?: boolean;
  copyToProgram?: boolean;
  copyFromProgram?: boolean;
  /** COPY to or from a file on the database server. */
  copyServerFile?: boolean;
  readsCatalogStats?: boolean;
  wholeRowReference?: boolean;
  cursorDeclared?: boolean;
  explainAnalyze?: boolean;
  sqlPrepare?: boolean;
  sqlExecute?: boolean;
  doBlock?: boolean;
  loadLibrary?: boolean;
  updateWithoutWhere?: boolean;
  /** A user-defined function is called outside the select list (in WHERE, JOIN, ORDER BY, ...). */
  userFunctionInPredicate?: boolean;
  deleteWithoutWhere?: boolean;
}

export interface StatementAnalysis {
  kind: StatementKindName;
  /** e.g. "SELECT", "CREATE TABLE" (for messages). */
  commandTag: string;
  /** Every base column the statement reads, anywhere. */
  reads: ColumnRef[];
  /** Base columns read other than by passing them, unchanged, to a result column. */
  computedReads: ColumnRef[];
  writes: ColumnRef[];
  tables: Array<{ schema: string; table: string; access: 'read' | 'write' }>;
  outputs: OutputColumn[];
  returnsRows: boolean;
  /** Functions called, lower case, schema-qualified when written so. */
  functions: string[];
  flags: StatementFlags;
  hasWhere: boolean;
  /** Names that could not be resolved (tables, columns): the policy layer refuses rather than guess. */
  unresolved: string[];
  /**
   * Bind parameters ($n) → the base columns each is compared to, assigned to or inserted into.
   * A parameter not listed has no origin the analysis can establish.
   */
  params?: Map<number, ColumnRef[]>;
}

export interface RelationInfo {
  schema: string;
  name: string;
  oid: number;
  kind: 'table' | 'view' | 'matview' | 'foreign' | 'partitioned' | 'other';
  columns: Array<{ name: string; attnum: number; typeOid: number }>;
  viewDefinition?: string;
}

export interface CatalogView {
  /** Schemas searched for unqualified names, after pg_catalog. */
  readonly searchPath: readonly string[];
  relation(schema: string | undefined, name: string): RelationInfo | undefined;
  /** True for functions defined in the database (outside pg_catalog): their bodies can read anything. */
  isUserFunction?(name: string): boolean;
}
