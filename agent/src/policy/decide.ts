/**
 * The decision for one statement string under one role: allow, mask (with a
 * per-output plan) or deny (with the rule that denied). Pure: no I/O, so the
 * agent and `warden validate` policy tests run the very same code.
 *
 * Rules beyond the role's table/column grants, all fail-closed:
 * - a statement kind must be granted to the role;
 * - dangerous functions and commands are refused outright;
 * - a masked column may be returned (masked) but not computed on, filtered
 *   or joined by: anything else could leak it through results, ordering or
 *   error messages (`ssn::int` fails with the value in the message);
 * - a result column whose origin cannot be established is refused when the
 *   role restricts any PHI.
 */
import { StatementKind } from '../../../proto/src/index.js';
import type { CompiledRole, ColumnDecision } from './compiled-policy.js';
import type { StatementAnalysis, StatementFlags, ColumnRef } from '../sql/index.js';
import { compileMasker, type Masker } from '../masking/index.js';
import type { ApprovalCandidate } from './approval-rules.js';

const REDACT_UNKNOWN = compileMasker({ kind: 'redact' });

export type DecisionAction = 'allow' | 'mask' | 'deny';

export interface OutputMask {
  index: number;
  column: string;
  strategy: string;
  masker: Masker;
}

export interface StatementPlan {
  kind: StatementKind;
  /** Masks for this statement's result columns, by output position. */
  masks: OutputMask[];
  /** Number of result columns the analysis expects (undefined: not a row-returning statement). */
  outputs?: number;
  /**
   * How the audit record keeps each bind parameter ($n → masker, null = as sent). A parameter
   * not listed has no established origin: see `unknownParams`.
   */
  params?: Map<number, Masker | null>;
  /** Masker for parameters of unknown origin: redact under PHI restrictions (fail closed), else null. */
  unknownParams?: Masker | null;
  /**
   * Result columns the record's sample keeps redacted (the client still gets them): under PHI
   * restrictions, values computed with a literal or parameter may echo PHI the client typed.
   */
  sampleRedact?: number[];
}

export interface Decision {
  action: DecisionAction;
  ruleIds: string[];
  /** For deny: the message the client sees (SQLSTATE 42501). Names rules and objects, never values. */
  reason?: string;
  statements: StatementPlan[];
  maskedColumns: Array<{ column: string; strategy: string }>;
  /** Base columns the statement reads or writes, "schema.table.column" (kept in the audit record). */
  touched?: string[];
  /** Approval rules whose statement-shape conditions hold (see approval-rules.ts); absent when none. */
  approvals?: ApprovalCandidate[];
  /** Tables the statement reads or writes ("schema.table"), for the record and audit search. */
  tables: string[];
}

/** Analysis kinds → the bundle's statement kinds. */
const KIND: Record<string, StatementKind> = {
  select: StatementKind.SELECT,
  insert: StatementKind.INSERT,
  update: StatementKind.UPDATE,
  delete: StatementKind.DELETE,
  merge: StatementKind.MERGE,
  ddl: StatementKind.DDL,
  truncate: StatementKind.TRUNCATE,
  'copy-out': StatementKind.COPY_OUT,
  'copy-in': StatementKind.COPY_IN,
  dcl: StatementKind.DCL,
  transaction: StatementKind.TRANSACTION,
  session: StatementKind.SESSION,
  explain: StatementKind.EXPLAIN,
  call: StatementKind.CALL,
  maintenance: StatementKind.MAINTENANCE,
};

export const KIND_NAME: Record<number, string> = Object.fromEntries(Object.entries(KIND).map(([k, v]) => [v, k]));

/** Functions that reach outside the database or around the policy, refused whatever the role. */
export const DANGEROUS_FUNCTIONS = new Set([
  'pg_read_file', 'pg_read_binary_file', 'pg_ls_dir', 'pg_stat_file', 'pg_ls_logdir', 'pg_ls_waldir', 'pg_ls_tmpdir',
  'lo_import', 'lo_export', 'lo_get', 'lo_put', 'lo_from_bytea', 'loread', 'lowrite', 'lo_open',
  'dblink', 'dblink_exec', 'dblink_connect', 'dblink_send_query', 'dblink_get_result', 'dblink_open', 'dblink_fetch',
  'pg_reload_conf', 'pg_terminate_backend', 'pg_cancel_backend', 'pg_rotate_logfile',
  'pg_file_write', 'pg_file_rename', 'pg_file_unlink',
  'pg_logical_emit_message', 'pg_switch_wal', 'pg_create_restore_point', 'pg_promote',
]);

/** Flags that refuse a statement for every role: they reach the database host itself. */
const ALWAYS_REFUSED: Array<[keyof StatementFlags, string]> = [
  ['alterSystem', 'ALTER SYSTEM changes server configuration'],
  ['copyToProgram', 'COPY ... TO PROGRAM runs a shell command on the database host'],
  ['copyFromProgram', 'COPY ... FROM PROGRAM runs a shell command on the database host'],
  ['copyServerFile', 'COPY to or from a file on the database server'],
  ['loadLibrary', 'LOAD loads a shared library into the server'],
];

/** Flags that refuse a statement for roles with PHI restrictions: each is a way around column rules. */
const REFUSED_WHEN_RESTRICTED: Array<[keyof StatementFlags, string]> = [
  ['setRole', 'SET ROLE / SET SESSION AUTHORIZATION changes whose privileges apply'],
  ['setsSearchPath', 'changing search_path could redirect names to other objects'],
  ['readsCatalogStats', "pg_stats, pg_statistic and pg_stat_activity expose column values and other sessions' statements"],
  ['doBlock', 'DO blocks run arbitrary procedural code'],
  ['userFunctionInPredicate', 'functions defined in the database can read any table; they may appear only in the select list'],
];

/** Functions that only matter when a role is restricted (an unrestricted role may read anything anyway). */
const RESTRICTED_FUNCTIONS = new Set(['set_config', 'query_to_xml', 'query_to_xml_and_xmlschema', 'query_to_xmlschema', 'cursor_to_xml', 'table_to_xml', 'table_to_xml_and_xmlschema', 'schema_to_xml', 'database_to_xml', 'ts_stat', 'ts_rewrite', 'xpath_table']);

function qualified(c: ColumnRef): string {
  return `${c.schema}.${c.table}.${c.column}`;
}

class Denied extends Error {
  constructor(
    readonly ruleId: string,
    message: string,
  ) {
    super(message);
  }
}

export function decide(analyses: StatementAnalysis[], role: CompiledRole): Decision {
  const ruleIds = new Set<string>();
  const maskedColumns = new Map<string, string>();
  const statements: StatementPlan[] = [];
  // Recorded for refused statements too: an attempt on PHI is evidence.
  const touched = [...new Set(analyses.flatMap((a) => [...a.reads, ...a.writes].map(qualified)))];
  const tables = [...new Set(analyses.flatMap((a) => a.tables.map((t) => `${t.schema}.${t.table}`)))];
  try {
    for (const a of analyses) statements.push(decideOne(a, role, ruleIds, maskedColumns));
  } catch (err) {
    if (!(err instanceof Denied)) throw err;
    ruleIds.add(err.ruleId);
    return { action: 'deny', ruleIds: [...ruleIds], reason: err.message, statements: [], maskedColumns: [], tables, ...(touched.length > 0 ? { touched } : {}) };
  }
  return {
    action: maskedColumns.size > 0 ? 'mask' : 'allow',
    ruleIds: [...ruleIds],
    statements,
    maskedColumns: [...maskedColumns].map(([column, strategy]) => ({ column, strategy })),
    ...(touched.length > 0 ? { touched } : {}),
    tables,
  };
}

function decideOne(a: StatementAnalysis, role: CompiledRole, ruleIds: Set<string>, maskedColumns: Map<string, string>): StatementPlan {
  const kind = KIND[a.kind] ?? StatementKind.OTHER;
  if (!role.kinds.has(kind)) {
    throw new Denied(`role/${role.name}/statement-kinds`, `${a.commandTag ?? a.kind} statements are not permitted for role "${role.name}"`);
  }
  // Unknown names are PostgreSQL's to report for an unrestricted role; under PHI restrictions we refuse to guess.
  if (a.unresolved.length > 0 && role.restrictsPhi) {
    throw new Denied('builtin/unresolved', `cannot resolve ${a.unresolved.slice(0, 3).join(', ')}; refusing what cannot be classified`);
  }
  const dangerous = a.functions
    .map((f) => f.split('.').pop()!)
    .filter((f) => DANGEROUS_FUNCTIONS.has(f) || (role.restrictsPhi && RESTRICTED_FUNCTIONS.has(f)));
  if (dangerous.length > 0) {
    throw new Denied('builtin/dangerous-function', `function ${dangerous[0]}() is not permitted through Warden`);
  }
  for (const [flag, why] of [...ALWAYS_REFUSED, ...(role.restrictsPhi ? REFUSED_WHEN_RESTRICTED : [])]) {
    if (a.flags[flag]) throw new Denied(`builtin/${flag}`, `refused: ${why}`);
  }

  const decisions = new Map<string, ColumnDecision>();
  const decideColumn = (c: ColumnRef): ColumnDecision => {
    const key = qualified(c);
    let d = decisions.get(key);
    if (!d) {
      if (!role.table(c.schema, c.table) && role.column(c.schema, c.table, c.column).action === 'deny') {
        throw new Denied(`role/${role.name}/default`, `table ${c.schema}.${c.table} is not permitted for role "${role.name}"`);
      }
      d = role.column(c.schema, c.table, c.column);
      if (d.action === 'deny') throw new Denied(d.ruleId, `column ${key} is not permitted for role "${role.name}" (rule ${d.ruleId})`);
      decisions.set(key, d);
    }
    return d;
  };

  for (const t of a.tables) {
    if (!role.table(t.schema, t.table)) {
      const d = role.column(t.schema, t.table, '*');
      if (d.action === 'deny') throw new Denied(d.ruleId, `table ${t.schema}.${t.table} is not permitted for role "${role.name}"`);
    }
  }
  for (const w of a.writes) {
    const d = decideColumn(w);
    if (d.action !== 'allow') throw new Denied(d.ruleId, `column ${qualified(w)} may not be written by role "${role.name}" (rule ${d.ruleId})`);
    ruleIds.add(d.ruleId);
  }

  // Every read must be allowed outright, or be a masked column that only ever flows, untouched, to an output.
  const directOnly = new Set<string>();
  for (const o of a.outputs) if (o.direct && o.sources.length === 1) directOnly.add(qualified(o.sources[0]!));
  for (const r of a.reads) {
    const d = decideColumn(r);
    ruleIds.add(d.ruleId);
    if (d.action === 'mask' && (!directOnly.has(qualified(r)) || a.computedReads.some((c) => qualified(c) === qualified(r)))) {
      throw new Denied(d.ruleId, `column ${qualified(r)} is masked for role "${role.name}": it can be selected, not computed on, filtered or joined by`);
    }
  }

  const masks: OutputMask[] = [];
  a.outputs.forEach((o, index) => {
    if (o.opaque && role.restrictsPhi) {
      if (!role.redactUnknownOrigin) {
        throw new Denied('builtin/unknown-origin', `result column "${o.name}" has an origin Warden cannot establish (a function defined in the database); refused for role "${role.name}"`);
      }
      masks.push({ index, column: `(unknown origin: ${o.name})`, strategy: 'redact', masker: REDACT_UNKNOWN });
      maskedColumns.set(`(unknown origin: ${o.name})`, 'redact');
      return;
    }
    if (o.sources.length === 0) return;
    const ds = o.sources.map(decideColumn);
    const masked = ds.filter((d) => d.action === 'mask');
    if (masked.length === 0) return;
    if (!o.direct || o.sources.length !== 1) {
      throw new Denied(masked[0]!.ruleId, `result column "${o.name}" is computed from masked column ${qualified(o.sources[0]!)}; refused for role "${role.name}"`);
    }
    const d = masked[0]!;
    masks.push({ index, column: qualified(o.sources[0]!), strategy: d.mask!, masker: d.masker! });
    maskedColumns.set(qualified(o.sources[0]!), d.mask!);
  });
  // Results that do not travel as rows of this statement cannot be masked on the wire.
  if (masks.length > 0) {
    const where = kind === StatementKind.COPY_OUT ? 'COPY output' : a.flags.cursorDeclared ? 'a cursor' : a.flags.sqlPrepare ? 'an SQL-level PREPARE' : undefined;
    if (where) throw new Denied(masks[0]!.column, `masked column ${masks[0]!.column} cannot be read through ${where}; use a plain SELECT`);
  }
  const sampleRedact = role.restrictsPhi ? a.outputs.flatMap((o, i) => (o.fromInput && !masks.some((m) => m.index === i) ? [i] : [])) : [];
  return { kind, masks, ...(a.returnsRows ? { outputs: a.outputs.length } : {}), ...paramPlan(a, role), ...(sampleRedact.length > 0 ? { sampleRedact } : {}) };
}

/** Parameters are recorded masked like the columns they meet; the first masking column wins. */
function paramPlan(a: StatementAnalysis, role: CompiledRole): Pick<StatementPlan, 'params' | 'unknownParams'> {
  const params = new Map<number, Masker | null>();
  for (const [n, cols] of a.params ?? []) {
    let masker: Masker | null = null;
    for (const c of cols) {
      masker = c.column === '*' ? REDACT_UNKNOWN : role.recordMasker(c.schema, c.table, c.column);
      if (masker) break;
    }
    params.set(n, masker);
  }
  return { params, unknownParams: role.restrictsPhi ? REDACT_UNKNOWN : null };
}
