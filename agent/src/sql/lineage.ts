/**
 * Statement analysis over the real PostgreSQL parse tree (libpg-query):
 * which base columns a statement reads and writes, and where each result
 * column comes from, through aliases, `*`, CTEs, subqueries, set
 * operations, joins, views and whole-row references. Anything it does not
 * understand is reported in `unresolved`, never silently ignored.
 */
import type { CatalogView, ColumnRef, OutputColumn, RelationInfo, StatementAnalysis } from './types.js';
import { classifyStatement } from './statement-kinds.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- the parse tree is dynamic JSON */
type Node = any;

interface ScopeColumn extends OutputColumn {}
interface RangeEntry {
  alias: string;
  relation?: { schema: string; table: string };
  columns: ScopeColumn[];
}
interface Scope {
  entries: RangeEntry[];
  parent: Scope | undefined;
  ctes: Map<string, ScopeColumn[]>;
  /** Result columns by name, for ORDER BY / GROUP BY references to output aliases. */
  outputs?: Map<string, ScopeColumn>;
}

/** Catalog relations whose rows hold other sessions' statements or samples of column values. */
const SENSITIVE_CATALOG = new Set([
  'pg_stats', 'pg_statistic', 'pg_stats_ext', 'pg_stats_ext_exprs', 'pg_statistic_ext_data',
  'pg_stat_activity', 'pg_stat_statements', 'pg_prepared_statements', 'pg_cursors', 'pg_stat_statements_info',
]);
const MAX_VIEW_DEPTH = 8;

/** True when an expression holds a literal or a bind parameter: its value may be whatever the client typed. */
function containsInput(n: Node): boolean {
  if (n === null || typeof n !== 'object') return false;
  if (Array.isArray(n)) return n.some(containsInput);
  if ('A_Const' in n || 'ParamRef' in n) return true;
  return Object.values(n).some(containsInput);
}

const key = (c: ColumnRef): string => `${c.schema}.${c.table}.${c.column}`;
const nodeKind = (n: Node): string | undefined => (n && typeof n === 'object' && !Array.isArray(n) ? Object.keys(n)[0] : undefined);
const str = (n: Node): string | undefined => n?.String?.sval;

export class LineageAnalyzer {
  readonly reads = new Map<string, ColumnRef>();
  readonly computed = new Map<string, ColumnRef>();
  readonly writes = new Map<string, ColumnRef>();
  readonly tables = new Map<string, { schema: string; table: string; access: 'read' | 'write' }>();
  readonly functions = new Set<string>();
  readonly unresolved: string[] = [];
  readonly flags: StatementAnalysis['flags'] = {};
  /** Bind parameters ($n) → the base columns each is compared to, assigned to or inserted into. */
  readonly params = new Map<number, Map<string, ColumnRef>>();
  private viewDepth = 0;
  /** Counts user-defined function calls seen, so a target can tell whether its expression made one. */
  private userCalls = 0;

  constructor(
    private readonly catalog: CatalogView,
    private readonly parse: (sql: string) => Node[],
  ) {}

  // ------------------------------------------------------------------ relations

  resolveRelation(schema: string | undefined, name: string): RelationInfo | undefined {
    if (schema) return this.catalog.relation(schema, name);
    for (const s of ['pg_catalog', ...this.catalog.searchPath]) {
      const r = this.catalog.relation(s, name);
      if (r) return r;
    }
    return undefined;
  }

  private relationColumns(rel: RelationInfo): ScopeColumn[] {
    this.tables.set(`${rel.schema}.${rel.name}`, { schema: rel.schema, table: rel.name, access: this.tables.get(`${rel.schema}.${rel.name}`)?.access ?? 'read' });
    if (SENSITIVE_CATALOG.has(rel.name) && rel.schema === 'pg_catalog') this.flags.readsCatalogStats = true;
    if ((rel.kind === 'view' || rel.kind === 'matview') && rel.viewDefinition && rel.schema !== 'pg_catalog' && rel.schema !== 'information_schema') {
      if (this.viewDepth >= MAX_VIEW_DEPTH) {
        this.unresolved.push(`view ${rel.schema}.${rel.name} nests too deeply`);
        return [];
      }
      this.viewDepth++;
      try {
        const stmts = this.parse(rel.viewDefinition);
        const outs = this.select(stmts[0]?.SelectStmt, undefined);
        return outs.map((o, i) => ({ ...o, name: rel.columns[i]?.name ?? o.name }));
      } finally {
        this.viewDepth--;
      }
    }
    return rel.columns.map((c) => ({ name: c.name, sources: [{ schema: rel.schema, table: rel.name, column: c.name }], direct: true }));
  }

  // ------------------------------------------------------------------ recording

  private read(sources: ColumnRef[], computed: boolean): void {
    for (const s of sources) {
      this.reads.set(key(s), s);
      if (computed) this.computed.set(key(s), s);
    }
  }

  // ------------------------------------------------------------------ SELECT

  /** Analyses a SelectStmt body; returns its result columns. */
  select(sel: Node, outer: Scope | undefined, inheritedCtes?: Map<string, ScopeColumn[]>): ScopeColumn[] {
    if (!sel) {
      this.unresolved.push('empty select');
      return [];
    }
    const ctes = new Map(inheritedCtes ?? outer?.ctes ?? []);
    for (const c of sel.withClause?.ctes ?? []) {
      const cte = c.CommonTableExpr;
      const q = cte.ctequery?.SelectStmt;
      if (!q) {
        this.unresolved.push(`CTE ${cte.ctename}: data-modifying CTEs are not analysed`);
        continue;
      }
      const names: string[] = (cte.aliascolnames ?? []).map(str);
      if (sel.withClause.recursive && q.op !== 'SETOP_NONE') {
        // The recursive term refers to the CTE itself: define it from the non-recursive term first.
        const seed = this.select(q.larg, outer, ctes);
        ctes.set(cte.ctename, seed.map((o, i) => ({ ...o, name: names[i] ?? o.name, direct: false })));
      }
      const outs = this.select(q, outer, ctes);
      ctes.set(cte.ctename, outs.map((o, i) => ({ ...o, name: names[i] ?? o.name })));
    }

    if (sel.op && sel.op !== 'SETOP_NONE') {
      const l = this.select(sel.larg, outer, ctes);
      const r = this.select(sel.rarg, outer, ctes);
      // Deduplicating set operations compare values; ALL variants only concatenate.
      if (!sel.all) for (const o of [...l, ...r]) this.read(o.sources, true);
      return l.map((o, i) => {
        const other = r[i];
        const sources = [...o.sources, ...(other?.sources ?? [])];
        const unique = new Set(sources.map(key));
        return { name: o.name, sources, direct: o.direct && (other?.direct ?? true) && unique.size <= 1, opaque: o.opaque || other?.opaque };
      });
    }

    const scope: Scope = { entries: [], parent: outer, ctes };
    if (sel.valuesLists) {
      const rows: Node[][] = sel.valuesLists.map((v: Node) => v.List?.items ?? []);
      return (rows[0] ?? []).map((_, i) => {
        const sources = rows.flatMap((row) => this.expr(row[i], scope, true));
        return { name: `column${i + 1}`, sources, direct: false };
      });
    }
    for (const item of sel.fromClause ?? []) this.fromItem(item, scope);

    const outputs: ScopeColumn[] = [];
    for (const t of sel.targetList ?? []) outputs.push(...this.target(t.ResTarget, scope));
    scope.outputs = new Map(outputs.map((o) => [o.name, o]));
    const before = this.userCalls;
    for (const clause of [sel.whereClause, sel.havingClause, sel.groupClause, sel.sortClause, sel.distinctClause, sel.windowClause, sel.limitCount, sel.limitOffset]) {
      if (clause) this.expr(clause, scope, true);
    }
    if (this.userCalls > before) this.flags.userFunctionInPredicate = true;
    return outputs;
  }

  /** One target-list entry: a bare column passes through (direct); anything else is computed. */
  private target(rt: Node, scope: Scope): ScopeColumn[] {
    const val = rt?.val;
    const fields = val?.ColumnRef?.fields as Node[] | undefined;
    if (fields) {
      const last = fields[fields.length - 1];
      if (last?.A_Star) {
        const entries = fields.length === 1 ? scope.entries : this.entriesNamed(fields.slice(0, -1).map(str), scope);
        if (entries.length === 0) this.unresolved.push(`${fields.slice(0, -1).map(str).join('.')}.*`);
        const cols = entries.flatMap((e) => e.columns);
        for (const c of cols) this.read(c.sources, false);
        return cols.map((c) => ({ ...c }));
      }
      const col = this.column(fields, scope);
      if (col && !col.wholeRow) {
        this.read(col.column.sources, false);
        return [{ ...col.column, name: rt.name ?? col.column.name }];
      }
    }
    const before = this.userCalls;
    const sources = this.expr(val, scope, true);
    const opaque = this.userCalls > before;
    const fromInput = containsInput(val);
    return [{ name: rt?.name ?? this.outputName(val), sources, direct: false, ...(opaque ? { opaque } : {}), ...(fromInput ? { fromInput } : {}) }];
  }

  private outputName(val: Node): string {
    const k = nodeKind(val);
    if (k === 'FuncCall') return str(val.FuncCall.funcname.at(-1)) ?? '?column?';
    if (k === 'TypeCast') return this.outputName(val.TypeCast.arg);
    if (k === 'ColumnRef') return str(val.ColumnRef.fields.at(-1)) ?? '?column?';
    return '?column?';
  }

  // ------------------------------------------------------------------ FROM

  fromItem(item: Node, scope: Scope): void {
    const k = nodeKind(item);
    const v = item?.[k ?? ''];
    const rename = (cols: ScopeColumn[], alias: Node): ScopeColumn[] => {
      const names: string[] = (alias?.colnames ?? []).map(str);
      return cols.map((c, i) => ({ ...c, name: names[i] ?? c.name }));
    };
    switch (k) {
      case 'RangeVar': {
        const alias = v.alias?.aliasname ?? v.relname;
        if (!v.schemaname && scope.ctes.has(v.relname)) {
          scope.entries.push({ alias, columns: rename(scope.ctes.get(v.relname)!, v.alias) });
          return;
        }
        const rel = this.resolveRelation(v.schemaname, v.relname);
        if (!rel) {
          this.unresolved.push(`relation ${v.schemaname ? v.schemaname + '.' : ''}${v.relname}`);
          scope.entries.push({ alias, columns: [] });
          return;
        }
        scope.entries.push({ alias, relation: { schema: rel.schema, table: rel.name }, columns: rename(this.relationColumns(rel), v.alias) });
        return;
      }
      case 'RangeSubselect': {
        const outs = this.select(v.subquery?.SelectStmt, v.lateral ? scope : scope.parent, scope.ctes);
        scope.entries.push({ alias: v.alias?.aliasname ?? '', columns: rename(outs, v.alias) });
        return;
      }
      case 'JoinExpr': {
        this.fromItem(v.larg, scope);
        this.fromItem(v.rarg, scope);
        if (v.quals) this.expr(v.quals, scope, true);
        const using: string[] = (v.usingClause ?? []).map(str);
        const natural = v.isNatural ? this.commonColumns(scope) : [];
        for (const name of [...using, ...natural]) {
          for (const e of scope.entries) for (const c of e.columns) if (c.name === name) this.read(c.sources, true);
        }
        return;
      }
      case 'RangeFunction': {
        const sources: ColumnRef[] = [];
        for (const f of v.functions ?? []) for (const part of f.List?.items ?? []) if (part && nodeKind(part)) sources.push(...this.expr(part, scope, true));
        const names: string[] = (v.alias?.colnames ?? []).map(str);
        const fname = str(v.functions?.[0]?.List?.items?.[0]?.FuncCall?.funcname?.at(-1)) ?? 'function';
        const cols = (names.length > 0 ? names : [v.alias?.aliasname ?? fname]).map((name) => ({ name, sources, direct: false }));
        scope.entries.push({ alias: v.alias?.aliasname ?? fname, columns: cols });
        return;
      }
      default:
        this.unresolved.push(`FROM item ${k ?? 'unknown'}`);
    }
  }

  private commonColumns(scope: Scope): string[] {
    const counts = new Map<string, number>();
    for (const e of scope.entries) for (const c of new Set(e.columns.map((c) => c.name))) counts.set(c, (counts.get(c) ?? 0) + 1);
    return [...counts].filter(([, n]) => n > 1).map(([c]) => c);
  }

  // ------------------------------------------------------------------ columns and expressions

  private entriesNamed(path: Array<string | undefined>, scope: Scope | undefined): RangeEntry[] {
    for (let s = scope; s; s = s.parent) {
      const name = path.at(-1);
      const schema = path.length > 1 ? path.at(-2) : undefined;
      const found = s.entries.filter((e) => (schema ? e.relation?.schema === schema && e.relation.table === name : e.alias === name));
      if (found.length > 0) return found;
    }
    return [];
  }

  /** Resolves a ColumnRef; a bare range name is a whole-row reference. */
  private column(fields: Node[], scope: Scope): { column: ScopeColumn; wholeRow: boolean } | undefined {
    const names = fields.map(str);
    if (names.some((n) => n === undefined)) return undefined;
    const colName = names.at(-1)!;
    for (let s: Scope | undefined = scope; s; s = s.parent) {
      const candidates = names.length === 1 ? s.entries : this.entriesNamed(names.slice(0, -1), s).filter((e) => s!.entries.includes(e));
      const matches = candidates.flatMap((e) => e.columns.filter((c) => c.name === colName));
      if (matches.length > 0) {
        // Ambiguity is PostgreSQL's error to raise; counting every match keeps us on the safe side.
        const sources = matches.flatMap((m) => m.sources);
        return { column: { name: colName, sources, direct: matches.length === 1 && matches[0]!.direct, opaque: matches.some((m) => m.opaque) }, wholeRow: false };
      }
      const rowEntries = this.entriesNamed(names, s).filter((e) => s!.entries.includes(e));
      if (rowEntries.length > 0) {
        this.flags.wholeRowReference = true;
        const sources = rowEntries.flatMap((e) => e.columns.flatMap((c) => c.sources));
        return { column: { name: colName, sources, direct: false }, wholeRow: true };
      }
      if (names.length === 1 && s.outputs?.has(colName)) {
        const o = s.outputs.get(colName)!;
        return { column: { ...o, direct: false }, wholeRow: false };
      }
    }
    return undefined;
  }

  /** Walks an expression; returns the base columns it depends on (recorded as reads, computed if asked). */
  expr(node: Node, scope: Scope, computed: boolean): ColumnRef[] {
    if (node === null || typeof node !== 'object') return [];
    if (Array.isArray(node)) return node.flatMap((n) => this.expr(n, scope, computed));
    const k = nodeKind(node);
    if (k === undefined) return [];
    const v = node[k];
    switch (k) {
      case 'ColumnRef': {
        const fields: Node[] = v.fields;
        if (fields.at(-1)?.A_Star) {
          const entries = fields.length === 1 ? scope.entries : this.entriesNamed(fields.slice(0, -1).map(str), scope);
          this.flags.wholeRowReference = true;
          const sources = entries.flatMap((e) => e.columns.flatMap((c) => c.sources));
          this.read(sources, computed);
          return sources;
        }
        const col = this.column(fields, scope);
        if (!col) {
          this.unresolved.push(`column ${fields.map(str).join('.')}`);
          return [];
        }
        this.read(col.column.sources, computed);
        return col.column.sources;
      }
      case 'SubLink': {
        const outs = this.select(v.subselect?.SelectStmt, scope);
        const sources = outs.flatMap((o) => o.sources);
        this.read(sources, computed);
        return [...sources, ...this.expr(v.testexpr, scope, computed)];
      }
      case 'FuncCall': {
        const name = (v.funcname as Node[]).map(str).join('.').toLowerCase();
        this.functions.add(name);
        if (this.catalog.isUserFunction?.(name)) this.userCalls++;
        return [...this.expr(v.args, scope, computed), ...this.expr(v.agg_filter, scope, computed), ...this.expr(v.agg_order, scope, computed), ...this.expr(v.over, scope, computed)];
      }
      case 'A_Const':
      case 'ParamRef':
      case 'TypeName':
        return [];
      case 'A_Expr': {
        // An operator ($1 = col, col IN ($1, $2), col BETWEEN $1 AND $2, ...): its parameters take the
        // classification of every column it involves, so the record masks them like those columns.
        const sources = [...this.expr(v.lexpr, scope, computed), ...this.expr(v.rexpr, scope, computed)];
        this.bindParams(node, sources);
        return sources;
      }
      default: {
        // Every other node (operators, casts, CASE, arrays, rows, indirection, ...) depends on what it contains.
        const out: ColumnRef[] = [];
        for (const child of Object.values(v ?? {})) if (child && typeof child === 'object') out.push(...this.expr(child, scope, computed));
        return out;
      }
    }
  }

  /** Associates every parameter inside `node` (not inside subqueries) with `sources`. */
  bindParams(node: Node, sources: ColumnRef[]): void {
    if (sources.length === 0) return;
    const visit = (n: Node): void => {
      if (n === null || typeof n !== 'object') return;
      if (Array.isArray(n)) return n.forEach(visit);
      const k = nodeKind(n);
      if (k === 'SubLink' || k === 'SelectStmt') return;
      if (k === 'ParamRef') {
        const number = n.ParamRef.number as number;
        let cols = this.params.get(number);
        if (!cols) this.params.set(number, (cols = new Map()));
        for (const s of sources) cols.set(key(s), s);
        return;
      }
      for (const child of Object.values(k ? n[k] ?? {} : n)) visit(child);
    };
    visit(node);
  }

  /** INSERT ... VALUES: the i-th value of each row goes into the i-th target column. */
  bindInsertValues(entry: RangeEntry, names: string[] | undefined, select: Node): void {
    const targets = names ? names.map((n) => entry.columns.find((c) => c.name === n)) : entry.columns;
    for (const row of select?.valuesLists ?? []) {
      (row.List?.items ?? []).forEach((item: Node, i: number) => {
        const col = targets[i];
        if (col) this.bindParams(item, col.sources);
      });
    }
  }

  // ------------------------------------------------------------------ whole statements

  statement(stmt: Node): StatementAnalysis {
    return classifyStatement(stmt, this);
  }

  newScope(entries: RangeEntry[] = []): Scope {
    return { entries, parent: undefined, ctes: new Map() };
  }

  /** A relation as a range entry for INSERT/UPDATE/DELETE/COPY targets. */
  targetEntry(rv: Node, access: 'read' | 'write'): RangeEntry | undefined {
    const rel = this.resolveRelation(rv?.schemaname, rv?.relname);
    if (!rel) {
      this.unresolved.push(`relation ${rv?.schemaname ? rv.schemaname + '.' : ''}${rv?.relname}`);
      return undefined;
    }
    const columns = this.relationColumns(rel);
    if (access === 'write') this.tables.set(`${rel.schema}.${rel.name}`, { schema: rel.schema, table: rel.name, access });
    return { alias: rv.alias?.aliasname ?? rel.name, relation: { schema: rel.schema, table: rel.name }, columns };
  }

  write(entry: RangeEntry, names: string[] | undefined): void {
    const cols = names ? entry.columns.filter((c) => names.includes(c.name)) : entry.columns;
    for (const n of names ?? []) if (!entry.columns.some((c) => c.name === n)) this.unresolved.push(`column ${entry.alias}.${n}`);
    for (const c of cols) for (const s of c.sources) this.writes.set(key(s), s);
  }

  targetList(list: Node[] | undefined, scope: Scope): OutputColumn[] {
    return (list ?? []).flatMap((t) => this.target(t.ResTarget, scope));
  }
}

export type { Scope, RangeEntry };
