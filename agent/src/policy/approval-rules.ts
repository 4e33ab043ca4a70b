/**
 * Which approval rule, if any, holds a statement the role permits. The
 * statement-shape conditions (role, target, kinds, tables, columns, PHI
 * classes, writes without WHERE, DDL, unmasking) are settled once per
 * statement shape and cached with its decision; only the time of day is
 * checked per execution. Row-limit rules are matched here too but take
 * effect only when a result actually reaches the role's row limit.
 */
import { ApprovalScope, StatementKind, Weekday, type ApprovalMatch, type ApprovalRule, type PolicyBundle, type TimeCondition } from '../../../proto/src/index.js';
import { compilePattern, type CompiledRole } from './compiled-policy.js';
import type { Decision } from './decide.js';
import type { ColumnRef, StatementAnalysis } from '../sql/index.js';

export interface ApprovalCandidate {
  rule: ApprovalRule;
  /** True when the rule applies only once a result exceeds the role's row limit. */
  rowLimit: boolean;
  /** Output positions (per statement) the approval releases unmasked, for `unmask` rules. */
  unmask?: Array<Set<number>>;
  /** Columns the statement touches, "schema.table.column", for the approver to see. */
  columns: string[];
}

interface CompiledRule {
  rule: ApprovalRule;
  tables: Array<(s: string, t: string) => boolean>;
  columns: Array<(s: string, t: string, c: string) => boolean>;
}

const WRITE_KINDS = new Set(['update', 'delete']);

export class ApprovalRules {
  private readonly rules: CompiledRule[];

  constructor(bundle: PolicyBundle, private readonly target: string) {
    this.rules = bundle.approvalRules.map((rule) => ({
      rule,
      tables: (rule.match?.tables ?? []).map((p) => compilePattern(p) as (s: string, t: string) => boolean),
      columns: (rule.match?.columns ?? []).map((p) => compilePattern(p) as (s: string, t: string, c: string) => boolean),
    }));
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** Rules whose shape conditions hold for a permitted statement, in evaluation order. */
  candidates(role: CompiledRole, analyses: StatementAnalysis[], decision: Decision, kinds: StatementKind[]): ApprovalCandidate[] {
    if (decision.action === 'deny' || this.rules.length === 0) return [];
    const out: ApprovalCandidate[] = [];
    const touched = analyses.flatMap((a) => [...a.reads, ...a.writes]);
    const columns = decision.touched ?? [...new Set(touched.map((c) => `${c.schema}.${c.table}.${c.column}`))];
    for (const r of this.rules) {
      const m = r.rule.match;
      if (!m || !forSql(m)) continue;
      if (m.roles.length > 0 && !m.roles.includes(role.name)) continue;
      if (m.targets.length > 0 && !m.targets.includes(this.target)) continue;
      if (m.statementKinds.length > 0 && !kinds.some((k) => m.statementKinds.includes(k))) continue;
      if (m.ddl && !kinds.includes(StatementKind.DDL)) continue;
      if (m.writeWithoutWhere && !analyses.some((a) => WRITE_KINDS.has(a.kind) && !a.hasWhere)) continue;
      if (r.tables.length > 0 && !analyses.some((a) => a.tables.some((t) => r.tables.some((p) => p(t.schema, t.table))))) continue;
      const columnMatches = (c: ColumnRef): boolean =>
        (r.columns.length === 0 || r.columns.some((p) => p(c.schema, c.table, c.column))) &&
        (m.phiClasses.length === 0 || m.phiClasses.includes(role.column(c.schema, c.table, c.column).phiClass));
      const narrowsColumns = r.columns.length > 0 || m.phiClasses.length > 0;
      if (m.unmask) {
        // Only statements that would otherwise return some of these columns masked.
        const unmask = decision.statements.map((plan) => new Set(plan.masks.filter((mask) => matchesQualified(mask.column, columnMatches)).map((mask) => mask.index)));
        if (!unmask.some((s) => s.size > 0)) continue;
        out.push({ rule: r.rule, rowLimit: m.rowLimitExceeded, unmask, columns });
        continue;
      }
      if (narrowsColumns && !touched.some(columnMatches)) continue;
      out.push({ rule: r.rule, rowLimit: m.rowLimitExceeded, columns });
    }
    return out;
  }
}

/** Rules written for HTTP requests or SSH sessions never hold SQL statements. */
function forSql(m: ApprovalMatch): boolean {
  return m.httpRoutes.length === 0 && m.sshCommands.length === 0 && !m.sshShell;
}

/** What an HTTP or SSH engine asks to do, in the terms approval rules match. */
export type ProtocolAction = { http: string } | { sshExec: string } | { sshShell: true };

/**
 * Approval rules for HTTP and SSH targets. A rule applies when its role,
 * target and time conditions hold and either it names the action
 * (httpRoutes / sshCommands regexes, sshShell) or it has no statement- or
 * protocol-specific condition at all (then it holds every request on the
 * targets and roles it names, as it would every SQL statement).
 */
export class ProtocolApprovalRules {
  private readonly rules: Array<{ rule: ApprovalRule; http: RegExp[]; ssh: RegExp[]; generic: boolean }>;

  constructor(bundle: PolicyBundle, private readonly target: string) {
    this.rules = bundle.approvalRules.flatMap((rule) => {
      const m = rule.match;
      if (!m || (m.targets.length > 0 && !m.targets.includes(target))) return [];
      const sqlSpecific = m.statementKinds.length > 0 || m.tables.length > 0 || m.columns.length > 0 || m.phiClasses.length > 0 ||
        m.writeWithoutWhere || m.ddl || m.rowLimitExceeded || m.unmask;
      const generic = !sqlSpecific && forSql(m);
      if (sqlSpecific && forSql(m)) return [];
      return [{ rule, generic, http: m.httpRoutes.map((r) => new RegExp(r)), ssh: m.sshCommands.map((r) => new RegExp(r)) }];
    });
  }

  /** The first rule that holds this action for this role at `now`. */
  holding(role: string, action: ProtocolAction, now: Date): ApprovalRule | undefined {
    for (const r of this.rules) {
      const m = r.rule.match!;
      if (m.roles.length > 0 && !m.roles.includes(role)) continue;
      if (!timeHolds(m.time, now)) continue;
      if (r.generic) return r.rule;
      if ('http' in action && r.http.some((re) => re.test(action.http))) return r.rule;
      if ('sshExec' in action && r.ssh.some((re) => re.test(action.sshExec))) return r.rule;
      if ('sshShell' in action && m.sshShell) return r.rule;
    }
    return undefined;
  }
}

function matchesQualified(column: string, match: (c: ColumnRef) => boolean): boolean {
  const [schema, table, name] = column.split('.');
  return schema !== undefined && table !== undefined && name !== undefined && match({ schema, table, column: name });
}

/** The first candidate that holds a statement before it runs, at time `now`. */
export function holdingRule(candidates: readonly ApprovalCandidate[] | undefined, now: Date): ApprovalCandidate | undefined {
  if (!candidates) return undefined;
  return candidates.find((c) => !c.rowLimit && timeHolds(c.rule.match?.time, now));
}

/** The first row-limit candidate in force at `now` (the result has just reached the limit). */
export function rowLimitRule(candidates: readonly ApprovalCandidate[] | undefined, now: Date): ApprovalCandidate | undefined {
  if (!candidates) return undefined;
  return candidates.find((c) => c.rowLimit && timeHolds(c.rule.match?.time, now));
}

export function isGrant(rule: ApprovalRule): boolean {
  return rule.scope === ApprovalScope.GRANT;
}

const DAY_INDEX: Record<string, Weekday> = {
  Mon: Weekday.MONDAY,
  Tue: Weekday.TUESDAY,
  Wed: Weekday.WEDNESDAY,
  Thu: Weekday.THURSDAY,
  Fri: Weekday.FRIDAY,
  Sat: Weekday.SATURDAY,
  Sun: Weekday.SUNDAY,
};
const PREVIOUS_DAY: Record<number, Weekday> = { 1: 7, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6 };

const clocks = new Map<string, Intl.DateTimeFormat>();

/** Weekday and minute of the day at `now` in `timeZone`. */
export function localClock(now: Date, timeZone: string): { day: Weekday; minute: number } {
  let f = clocks.get(timeZone);
  if (!f) clocks.set(timeZone, (f = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })));
  const parts = Object.fromEntries(f.formatToParts(now).map((p) => [p.type, p.value]));
  return { day: DAY_INDEX[parts.weekday ?? ''] ?? Weekday.UNSPECIFIED, minute: Number(parts.hour) * 60 + Number(parts.minute) };
}

/** Whether a rule's time condition holds at `now` (no condition always holds). */
export function timeHolds(cond: TimeCondition | undefined, now: Date): boolean {
  if (!cond || cond.windows.length === 0) return true;
  const inside = cond.windows.some((w) => {
    const { day, minute } = localClock(now, w.timeZone || 'UTC');
    const onDay = (d: Weekday): boolean => w.days.length === 0 || w.days.includes(d);
    if (w.endMinute === w.startMinute) return onDay(day);
    if (w.startMinute < w.endMinute) return onDay(day) && minute >= w.startMinute && minute < w.endMinute;
    // Runs past midnight: the part after midnight belongs to the window that opened the day before.
    return (onDay(day) && minute >= w.startMinute) || (onDay(PREVIOUS_DAY[day] ?? day) && minute < w.endMinute);
  });
  return cond.outside ? !inside : inside;
}
