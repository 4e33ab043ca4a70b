/**
 * Per statement type: its kind (as the policy grants them), what it reads,
 * writes and returns. Statement types not listed here are classified
 * `other`, which no role gets by default.
 */
import type { LineageAnalyzer } from './lineage.js';
import type { OutputColumn, StatementAnalysis, StatementKindName } from './types.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- the parse tree is dynamic JSON */
type Node = any;

const str = (n: Node): string | undefined => n?.String?.sval;

const DDL = /^(Create|Alter|Drop|Rename|Comment|Index|View|Define|CompositeType|CreateEnum|AlterEnum|Rule|CreateTrig|CreateFunction|AlterFunction|CreateSeq|AlterSeq|CreateDomain|AlterDomain|CreateSchema|CreateExtension|AlterExtension|SecLabel|CreatePolicy|AlterPolicy|CreateStats|Refresh|ReassignOwned|AlterOwner|AlterObjectSchema|CreateCast|CreateConversion|CreateOpClass|CreateTableSpace|ImportForeignSchema|CreateForeign|CreateUserMapping|CreatePublication|CreateSubscription|AlterTable|AlterDefaultPrivileges)/;
const DCL = /^(Grant|GrantRole|CreateRole|AlterRole|DropRole|AlterRoleSet|DropOwned)Stmt$/;
const MAINTENANCE = new Set(['VacuumStmt', 'ClusterStmt', 'ReindexStmt', 'CheckPointStmt']);
const SESSION = new Set(['VariableShowStmt', 'DiscardStmt', 'ListenStmt', 'UnlistenStmt', 'NotifyStmt', 'DeallocateStmt', 'ClosePortalStmt', 'ConstraintsSetStmt']);

function result(a: LineageAnalyzer, kind: StatementKindName, commandTag: string, outputs: OutputColumn[], returnsRows: boolean, hasWhere = false): StatementAnalysis {
  return {
    kind,
    commandTag,
    reads: [...a.reads.values()],
    computedReads: [...a.computed.values()],
    writes: [...a.writes.values()],
    tables: [...a.tables.values()],
    outputs,
    returnsRows,
    functions: [...a.functions],
    flags: a.flags,
    hasWhere,
    unresolved: a.unresolved,
    params: new Map([...a.params].map(([n, cols]) => [n, [...cols.values()]])),
  };
}

export function classifyStatement(stmt: Node, a: LineageAnalyzer): StatementAnalysis {
  const type = Object.keys(stmt ?? {})[0] ?? 'unknown';
  const v = stmt?.[type];
  switch (type) {
    case 'SelectStmt': {
      if (v.intoClause) {
        // SELECT ... INTO copies data into a new table.
        const outs = a.select(v, undefined);
        for (const o of outs) for (const s of o.sources) a.computed.set(`${s.schema}.${s.table}.${s.column}`, s);
        return result(a, 'ddl', 'SELECT INTO', [], false);
      }
      const locking = (v.lockingClause ?? []).length > 0;
      return result(a, 'select', locking ? 'SELECT FOR UPDATE' : 'SELECT', a.select(v, undefined), true, Boolean(v.whereClause));
    }
    case 'InsertStmt': {
      const entry = a.targetEntry(v.relation, 'write');
      if (!entry) return result(a, 'insert', 'INSERT', [], false);
      const names: string[] | undefined = v.cols ? v.cols.map((c: Node) => c.ResTarget.name) : undefined;
      a.write(entry, names);
      a.bindInsertValues(entry, names, v.selectStmt?.SelectStmt);
      if (v.selectStmt?.SelectStmt) {
        // Whatever is inserted is copied: its sources count as computed reads.
        const outs = a.select(v.selectStmt.SelectStmt, undefined);
        for (const o of outs) for (const s of o.sources) a.computed.set(`${s.schema}.${s.table}.${s.column}`, s);
      }
      if (v.onConflictClause) a.expr(v.onConflictClause, a.newScope([entry]), true);
      const outs = a.targetList(v.returningClause?.exprs ?? v.returningList, a.newScope([entry]));
      return result(a, 'insert', 'INSERT', outs, outs.length > 0);
    }
    case 'UpdateStmt': {
      const entry = a.targetEntry(v.relation, 'write');
      if (!entry) return result(a, 'update', 'UPDATE', [], false, Boolean(v.whereClause));
      const scope = a.newScope([entry]);
      for (const f of v.fromClause ?? []) a.fromItem(f, scope);
      const names: string[] = (v.targetList ?? []).map((t: Node) => t.ResTarget.name);
      a.write(entry, names);
      for (const t of v.targetList ?? []) {
        a.expr(t.ResTarget.val, scope, true);
        a.bindParams(t.ResTarget.val, entry.columns.find((c) => c.name === t.ResTarget.name)?.sources ?? []);
      }
      if (v.whereClause) a.expr(v.whereClause, scope, true);
      if (!v.whereClause) a.flags.updateWithoutWhere = true;
      const outs = a.targetList(v.returningClause?.exprs ?? v.returningList, scope);
      return result(a, 'update', 'UPDATE', outs, outs.length > 0, Boolean(v.whereClause));
    }
    case 'DeleteStmt': {
      const entry = a.targetEntry(v.relation, 'write');
      if (!entry) return result(a, 'delete', 'DELETE', [], false, Boolean(v.whereClause));
      const scope = a.newScope([entry]);
      for (const f of v.usingClause ?? []) a.fromItem(f, scope);
      a.write(entry, undefined);
      if (v.whereClause) a.expr(v.whereClause, scope, true);
      else a.flags.deleteWithoutWhere = true;
      const outs = a.targetList(v.returningClause?.exprs ?? v.returningList, scope);
      return result(a, 'delete', 'DELETE', outs, outs.length > 0, Boolean(v.whereClause));
    }
    case 'MergeStmt':
      a.unresolved.push('MERGE is not analysed');
      return result(a, 'merge', 'MERGE', [], false);
    case 'CopyStmt': {
      if (v.is_program) a.flags[v.is_from ? 'copyFromProgram' : 'copyToProgram'] = true;
      else if (v.filename) a.flags.copyServerFile = true;
      if (v.query?.SelectStmt) return result(a, 'copy-out', 'COPY', a.select(v.query.SelectStmt, undefined), false);
      const entry = a.targetEntry(v.relation, v.is_from ? 'write' : 'read');
      if (!entry) return result(a, v.is_from ? 'copy-in' : 'copy-out', 'COPY', [], false);
      const names: string[] | undefined = v.attlist ? v.attlist.map(str) : undefined;
      if (v.is_from) {
        a.write(entry, names);
        return result(a, 'copy-in', 'COPY', [], false);
      }
      const cols = names ? entry.columns.filter((c) => names.includes(c.name)) : entry.columns;
      for (const c of cols) for (const s of c.sources) a.reads.set(`${s.schema}.${s.table}.${s.column}`, s);
      return result(a, 'copy-out', 'COPY', cols, false);
    }
    case 'ExplainStmt': {
      const analyze = (v.options ?? []).some((o: Node) => o.DefElem?.defname === 'analyze');
      if (analyze) a.flags.explainAnalyze = true;
      const inner = classifyStatement(v.query, a);
      // The plan is text about the query, but ANALYZE runs it: the inner statement's reads are what matter.
      return { ...inner, kind: 'explain', commandTag: 'EXPLAIN', outputs: [{ name: 'QUERY PLAN', sources: [], direct: false }], returnsRows: true, innerKind: inner.kind } as StatementAnalysis;
    }
    case 'DeclareCursorStmt': {
      a.flags.cursorDeclared = true;
      const outs = a.select(v.query?.SelectStmt, undefined);
      return result(a, 'select', 'DECLARE CURSOR', outs, false);
    }
    case 'FetchStmt':
      // The cursor's query was decided at DECLARE; FETCH results are checked field by field against the catalog.
      return result(a, 'select', v.ismove ? 'MOVE' : 'FETCH', [], false);
    case 'PrepareStmt': {
      a.flags.sqlPrepare = true;
      const inner = classifyStatement(v.query, a);
      return { ...inner, commandTag: 'PREPARE', returnsRows: false };
    }
    case 'ExecuteStmt':
      a.flags.sqlExecute = true;
      return result(a, 'select', 'EXECUTE', [], false);
    case 'VariableSetStmt': {
      const name = String(v.name ?? '').toLowerCase();
      if (name === 'search_path') a.flags.setsSearchPath = true;
      if (name === 'role' || name === 'session_authorization' || name === 'session authorization') a.flags.setRole = true;
      return result(a, v.kind === 'VAR_SET_MULTI' && name === 'transaction' ? 'transaction' : 'session', v.kind === 'VAR_RESET' ? 'RESET' : 'SET', [], false);
    }
    case 'TransactionStmt':
      return result(a, 'transaction', String(v.kind ?? 'TRANSACTION').replace('TRANS_STMT_', ''), [], false);
    case 'TruncateStmt':
      for (const r of v.relations ?? []) {
        const e = a.targetEntry(r.RangeVar ?? r, 'write');
        if (e) a.write(e, undefined);
      }
      return result(a, 'truncate', 'TRUNCATE', [], false);
    case 'DoStmt':
      a.flags.doBlock = true;
      return result(a, 'call', 'DO', [], false);
    case 'CallStmt':
      a.expr(v.funccall, a.newScope(), true);
      return result(a, 'call', 'CALL', [], false);
    case 'LoadStmt':
      a.flags.loadLibrary = true;
      return result(a, 'other', 'LOAD', [], false);
    case 'AlterSystemStmt':
      a.flags.alterSystem = true;
      return result(a, 'ddl', 'ALTER SYSTEM', [], false);
    case 'CreateTableAsStmt': {
      const outs = a.select(v.query?.SelectStmt, undefined);
      for (const o of outs) for (const s of o.sources) a.computed.set(`${s.schema}.${s.table}.${s.column}`, s);
      return result(a, 'ddl', 'CREATE TABLE AS', [], false);
    }
    case 'ViewStmt': {
      // Defining a view reads nothing now; selecting from it later is resolved through its definition.
      return result(a, 'ddl', 'CREATE VIEW', [], false);
    }
    default:
      if (MAINTENANCE.has(type)) return result(a, 'maintenance', type.replace('Stmt', '').toUpperCase(), [], false);
      if (SESSION.has(type)) {
        const show = type === 'VariableShowStmt';
        return result(a, 'session', show ? 'SHOW' : type.replace('Stmt', '').toUpperCase(), show ? [{ name: String(v.name ?? 'setting'), sources: [], direct: false }] : [], show);
      }
      if (DCL.test(type)) return result(a, 'dcl', type.replace('Stmt', '').toUpperCase(), [], false);
      if (DDL.test(type)) return result(a, 'ddl', type.replace('Stmt', '').toUpperCase(), [], false);
      return result(a, 'other', type.replace('Stmt', '').toUpperCase(), [], false);
  }
}

export { str };
