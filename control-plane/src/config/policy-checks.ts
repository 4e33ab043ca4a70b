/**
 * The checks that make a policy safe rather than merely well-formed:
 * classified PHI a role can read must have a decision, rules must not
 * contradict each other, and every MASK must end up with a concrete
 * strategy. They reason over patterns, so they hold for every table the
 * patterns can match, not just the tables that exist today.
 */
import {
  appliesToRole,
  columnRuleId,
  describeMask,
  diag,
  normalizeMask,
  sameMask,
  type Located,
  type NormalizedMask,
} from './model.js';
import { patternCovers, patternsIntersect, splitColumnPattern } from './patterns.js';
import type { ClassificationRuleSpec, ColumnRuleSpec, Diagnostic, PolicyActionName, RoleSpec } from './types.js';

type Classes = Located<ClassificationRuleSpec>[];

/** For each classification rule, the index of an earlier rule that always wins over it. */
export function shadowedClassifications(classes: Classes): Array<number | undefined> {
  return classes.map((c, k) => {
    for (let j = 0; j < k; j++) {
      const e = classes[j]!.spec;
      const eAll = !e.targets || e.targets.length === 0;
      const within = eAll || (!!c.spec.targets && c.spec.targets.length > 0 && c.spec.targets.every((t) => e.targets!.includes(t)));
      if (within && patternCovers(e.pattern, c.spec.pattern)) return j;
    }
    return undefined;
  });
}

function selectorText(r: ColumnRuleSpec): string {
  return r.phiClass !== undefined ? `phiClass ${r.phiClass}` : `column "${r.column}"`;
}

/**
 * Classified PHI the role can read without a masking decision. A column
 * counts as decided when an explicit column rule selects it (by its class,
 * or by a name pattern covering the classification's column pattern); an
 * explicit allow is a decision too, just a visible one.
 */
export function checkPhiCoverage(role: Located<RoleSpec>, classes: Classes, shadowed: Array<number | undefined>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const r = role.spec;
  const roleDefault: PolicyActionName = r.defaultAction ?? 'deny';
  classes.forEach((c, k) => {
    const cls = c.spec;
    if (cls.phiClass === 'none' || shadowed[k] !== undefined || !appliesToRole(cls, r)) return;
    const { table, column } = splitColumnPattern(cls.pattern);
    let covered = false;
    for (const [ti, t] of r.tables.entries()) {
      if (!patternsIntersect(t.table, table)) continue;
      const explicit = (t.columns ?? []).some((col) =>
        col.phiClass !== undefined ? col.phiClass === cls.phiClass : patternCovers(col.column ?? '', column),
      );
      const effective = t.defaultAction ?? roleDefault;
      if (!explicit && effective === 'allow') {
        out.push(diag('error', role, ['tables', ti], 'unmasked-phi',
          `role "${r.name}" can read ${cls.pattern} (${cls.phiClass}) unmasked: table rule "${t.table}" allows it and no column rule covers column "${column}"; ` +
          `add a column rule for it (action mask or deny, or allow to accept it explicitly)`));
      } else if (!explicit && effective === 'mask' && !cls.defaultMask) {
        out.push(diag('warning', role, ['tables', ti], 'mask-unresolved',
          `role "${r.name}" masks ${cls.pattern} (${cls.phiClass}) by default in "${t.table}", but the classification has no defaultMask, so agents will deny the column`));
      }
      if (patternCovers(t.table, table)) {
        covered = true;
        break;
      }
    }
    if (!covered && roleDefault === 'allow') {
      out.push(diag('error', role, ['defaultAction'], 'unmasked-phi',
        `role "${r.name}" can read ${cls.pattern} (${cls.phiClass}) unmasked: no table rule covers table "${table}" and defaultAction is allow`));
    }
  });
  return out;
}

/** Two rules for the same table pattern and selector: the later one can never apply, and if it disagrees the author meant something else. */
export function checkContradictions(role: Located<RoleSpec>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const r = role.spec;
  const tableDefaults = new Map<string, { ti: number; action: PolicyActionName }>();
  const columns = new Map<string, { ti: number; ci: number; action: PolicyActionName; mask: NormalizedMask | undefined }>();
  r.tables.forEach((t, ti) => {
    if (t.defaultAction !== undefined) {
      const first = tableDefaults.get(t.table);
      if (first && first.action !== t.defaultAction) {
        out.push(diag('error', role, ['tables', ti, 'defaultAction'], 'contradictory-rules',
          `role "${r.name}": table "${t.table}" defaultAction is ${t.defaultAction} here but ${first.action} in tables[${first.ti}]`));
      } else if (!first) {
        tableDefaults.set(t.table, { ti, action: t.defaultAction });
      }
    }
    (t.columns ?? []).forEach((col, ci) => {
      const key = `${t.table}\0${col.phiClass !== undefined ? `class:${col.phiClass}` : `column:${col.column}`}`;
      const mask = col.mask ? normalizeMask(col.mask) : undefined;
      const first = columns.get(key);
      if (!first) {
        columns.set(key, { ti, ci, action: col.action, mask });
        return;
      }
      const where = `tables[${first.ti}].columns[${first.ci}]`;
      if (first.action !== col.action || !sameMask(first.mask, mask)) {
        const say = (a: PolicyActionName, m: NormalizedMask | undefined) => (m ? `${a} with ${describeMask(m)}` : a);
        out.push(diag('error', role, ['tables', ti, 'columns', ci], 'contradictory-rules',
          `role "${r.name}": ${selectorText(col)} of table "${t.table}" is ${say(col.action, mask)} here but ${say(first.action, first.mask)} in ${where}; ` +
          `the first rule wins, so remove one`));
      } else {
        out.push(diag('warning', role, ['tables', ti, 'columns', ci], 'duplicate-rule',
          `role "${r.name}": ${selectorText(col)} of table "${t.table}" repeats ${where} and never applies`));
      }
    });
  });
  return out;
}

export type MaskResolution =
  | { kind: 'none' }
  | { kind: 'single'; mask: NormalizedMask }
  | { kind: 'expand'; rules: Array<{ id: string; column: string; mask: NormalizedMask }> }
  | { kind: 'error'; code: string; message: string };

/**
 * The MaskSpec a MASK column rule compiles to. Without its own mask the
 * rule borrows the classification's defaultMask. When the columns it selects
 * carry different default masks, it becomes one rule per classification
 * rule (id "<rule id>/<classification id>"), which is only done when that
 * expansion selects exactly the same columns; otherwise the author must say.
 */
export function resolveColumnMask(
  role: RoleSpec,
  ti: number,
  ci: number,
  classes: Classes,
  classIds: string[],
  shadowed: Array<number | undefined>,
): MaskResolution {
  const t = role.tables[ti]!;
  const r = t.columns![ci]!;
  if (r.action !== 'mask') return { kind: 'none' };
  if (r.mask) return { kind: 'single', mask: normalizeMask(r.mask) };
  const sel = selectorText(r);
  const relevant: Array<{ k: number; c: ClassificationRuleSpec; col: string | undefined; exact: boolean }> = [];
  classes.forEach(({ spec: c }, k) => {
    if (shadowed[k] !== undefined || !appliesToRole(c, role)) return;
    const { table, column } = splitColumnPattern(c.pattern);
    if (!patternsIntersect(table, t.table)) return;
    let col: string | undefined;
    if (r.phiClass !== undefined) {
      if (c.phiClass !== r.phiClass) return;
      col = column;
    } else {
      const name = r.column ?? '';
      if (!patternsIntersect(name, column)) return;
      col = patternCovers(name, column) ? column : patternCovers(column, name) ? name : undefined;
    }
    const everyTarget = !c.targets || c.targets.length === 0 || role.targets.every((x) => c.targets!.includes(x));
    relevant.push({ k, c, col, exact: everyTarget && patternCovers(table, t.table) });
  });
  const fail = (code: string, why: string): MaskResolution => ({
    kind: 'error', code, message: `role "${role.name}" masks ${sel} of table "${t.table}" without a mask strategy, ${why}`,
  });
  if (relevant.length === 0) return fail('mask-unresolved', 'and no classification rule applies there to lend its defaultMask; set mask.strategy');
  const missing = relevant.filter((x) => !x.c.defaultMask).map((x) => x.c.pattern);
  if (missing.length > 0) return fail('mask-unresolved', `and classification ${missing.join(', ')} has no defaultMask; set mask.strategy or give the classification a defaultMask`);
  if (r.phiClass === undefined && !relevant.some((x) => x.exact && patternCovers(splitColumnPattern(x.c.pattern).column, r.column ?? ''))) {
    return fail('mask-unresolved', 'and it also selects columns no classification rule covers, which would have no mask; set mask.strategy');
  }
  const masks = relevant.map((x) => normalizeMask(x.c.defaultMask!));
  if (masks.every((m) => sameMask(m, masks[0]))) return { kind: 'single', mask: masks[0]! };
  const list = [...new Set(masks.map(describeMask))].join(', ');
  const ambiguous = fail('mask-ambiguous', `and the classifications it selects have different default masks (${list}) that cannot be told apart within this table rule; set mask.strategy or write one rule per column`);
  if (relevant.some((x) => !x.exact || x.col === undefined)) return ambiguous;
  if (r.phiClass !== undefined) {
    // A name rule stands in for a class rule only if no earlier rule of another class claims some of its columns.
    const interferes = relevant.some((x) =>
      classes.slice(0, x.k).some(({ spec: e }, j) =>
        shadowed[j] === undefined && appliesToRole(e, role) && e.phiClass !== r.phiClass && patternsIntersect(e.pattern, x.c.pattern) &&
        patternsIntersect(splitColumnPattern(e.pattern).table, t.table)),
    );
    if (interferes) return ambiguous;
  }
  const id = columnRuleId(role, ti, ci);
  return { kind: 'expand', rules: relevant.map((x, i) => ({ id: `${id}/${classIds[x.k]}`, column: x.col!, mask: masks[i]! })) };
}
