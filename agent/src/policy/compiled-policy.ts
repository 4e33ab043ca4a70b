/**
 * A bundle's roles and classification, compiled once into lookups the data
 * path can afford: pattern matching happens the first time a table or
 * column is seen, then it is a map hit.
 */
import {
  PolicyAction,
  PhiClass,
  RowLimitAction,
  StatementKind,
  UnknownOriginAction,
  type ClassificationRule,
  type MaskSpec,
  type PolicyBundle,
  type Role,
  type TableRule,
} from '../../../proto/src/index.js';
import { compileMasker, type Masker } from '../masking/index.js';
import { MaskerFactory, PolicyLoadError, type SecretResolver } from './maskers.js';

const REDACT_RECORD = compileMasker({ kind: 'redact' });

export type ColumnAction = 'allow' | 'mask' | 'deny';

export interface ColumnDecision {
  action: ColumnAction;
  ruleId: string;
  phiClass: PhiClass;
  masker?: Masker;
  /** Strategy description for the audit record, e.g. "partial(keep_suffix=4)". */
  mask?: string;
}

/** "schema.table[.column]" pattern with `*` matching any run of characters within one segment. */
export function compilePattern(pattern: string): (...segments: string[]) => boolean {
  const parts = pattern.split('.').map((p) => new RegExp('^' + p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^.]*') + '$'));
  return (...segments) => segments.length === parts.length && parts.every((re, i) => re.test(segments[i]!));
}

const ACTION: Record<number, ColumnAction | undefined> = {
  [PolicyAction.ALLOW]: 'allow',
  [PolicyAction.MASK]: 'mask',
  [PolicyAction.DENY]: 'deny',
};

export class CompiledRole {
  readonly kinds: ReadonlySet<StatementKind>;
  readonly maxRows: number;
  readonly truncateOverLimit: boolean;
  /** Redact (rather than refuse) result columns whose origin cannot be established. */
  readonly redactUnknownOrigin: boolean;
  /** True when some column is masked or denied: results then need classification, and unknown origins are refused. */
  readonly restrictsPhi: boolean;
  private readonly tables: Array<{ rule: TableRule; match: (s: string, t: string) => boolean; columns: Array<(c: string, cls: PhiClass) => boolean> }>;
  private readonly tableCache = new Map<string, TableRule | null>();
  private readonly columnCache = new Map<string, ColumnDecision>();

  constructor(
    readonly role: Role,
    private readonly policy: CompiledPolicy,
  ) {
    this.kinds = new Set(role.statementKinds);
    this.maxRows = role.maxRows;
    this.truncateOverLimit = role.rowLimitAction !== RowLimitAction.ERROR;
    this.redactUnknownOrigin = role.unknownOrigin === UnknownOriginAction.REDACT;
    this.tables = role.tables.map((rule) => ({
      rule,
      match: compilePattern(rule.table) as (s: string, t: string) => boolean,
      columns: rule.columns.map((c) => {
        if (c.selector.case === 'column') {
          const m = compilePattern(c.selector.value);
          return (col: string) => m(col);
        }
        const cls = c.selector.value;
        return (_col: string, phi: PhiClass) => phi === cls;
      }),
    }));
    this.restrictsPhi =
      role.defaultAction !== PolicyAction.ALLOW ||
      role.tables.some((t) => (t.defaultAction !== PolicyAction.ALLOW && t.defaultAction !== PolicyAction.UNSPECIFIED) || t.columns.some((c) => c.action !== PolicyAction.ALLOW));
  }

  get name(): string {
    return this.role.name;
  }

  /** The first table rule matching, or undefined when the role says nothing of the table. */
  table(schema: string, table: string): TableRule | undefined {
    const key = `${schema}.${table}`;
    let hit = this.tableCache.get(key);
    if (hit === undefined) {
      hit = this.tables.find((t) => t.match(schema, table))?.rule ?? null;
      this.tableCache.set(key, hit);
    }
    return hit ?? undefined;
  }

  column(schema: string, table: string, column: string): ColumnDecision {
    const key = `${schema}.${table}.${column}`;
    const cached = this.columnCache.get(key);
    if (cached) return cached;
    const decision = this.resolveColumn(schema, table, column);
    this.columnCache.set(key, decision);
    return decision;
  }

  private resolveColumn(schema: string, table: string, column: string): ColumnDecision {
    const classification = this.policy.classify(schema, table, column);
    const phiClass = classification?.phiClass ?? PhiClass.UNSPECIFIED;
    const entry = this.tables.find((t) => t.match(schema, table));
    const roleDefault = (): ColumnDecision => ({ action: ACTION[this.role.defaultAction] ?? 'deny', ruleId: `role/${this.role.name}/default`, phiClass });
    if (!entry) return roleDefault();
    const i = entry.columns.findIndex((m) => m(column, phiClass));
    if (i < 0) {
      const tableDefault = ACTION[entry.rule.defaultAction];
      if (!tableDefault) return roleDefault();
      return this.withMask({ action: tableDefault, ruleId: entry.rule.id, phiClass }, undefined, classification);
    }
    const rule = entry.rule.columns[i]!;
    return this.withMask({ action: ACTION[rule.action] ?? 'deny', ruleId: rule.id, phiClass }, rule.mask, classification);
  }

  /**
   * How the audit record keeps a value bound to this column (a bind parameter compared to it or
   * written into it): masked like the column's results when the role masks it; redacted, or masked
   * by the classification's default, when it is PHI or denied; kept (null) only for unclassified,
   * allowed columns.
   */
  recordMasker(schema: string, table: string, column: string): Masker | null {
    const d = this.column(schema, table, column);
    if (d.action === 'mask' && d.masker) return d.masker;
    if (d.action === 'allow' && d.phiClass === PhiClass.UNSPECIFIED) return null;
    const cls = this.policy.classify(schema, table, column);
    return cls?.defaultMask?.strategy ? this.policy.maskers.get(cls.defaultMask).masker : REDACT_RECORD;
  }

  /** A MASK without a usable strategy fails closed to DENY. */
  private withMask(d: ColumnDecision, spec: MaskSpec | undefined, cls: ClassificationRule | undefined): ColumnDecision {
    if (d.action !== 'mask') return d;
    const chosen = spec?.strategy ? spec : cls?.defaultMask?.strategy ? cls.defaultMask : undefined;
    if (!chosen) return { ...d, action: 'deny' };
    const { masker, description } = this.policy.maskers.get(chosen);
    return { ...d, masker, mask: description };
  }
}

export class CompiledPolicy {
  readonly maskers: MaskerFactory;
  private readonly roles = new Map<string, CompiledRole>();
  private readonly classifications: Array<{ rule: ClassificationRule; match: (s: string, t: string, c: string) => boolean }>;
  private readonly classCache = new Map<string, ClassificationRule | null>();

  constructor(
    readonly bundle: PolicyBundle,
    readonly target: string,
    baseDir: string,
    secrets?: SecretResolver,
  ) {
    this.maskers = new MaskerFactory(bundle.maskingStrategies, baseDir, secrets);
    this.classifications = bundle.classifications
      .filter((r) => r.targets.length === 0 || r.targets.includes(target))
      .map((rule) => ({ rule, match: compilePattern(rule.pattern) as (s: string, t: string, c: string) => boolean }));
    for (const role of bundle.roles) this.roles.set(role.name, new CompiledRole(role, this));
    // Compile every strategy now so a broken one fails the load, not a query.
    for (const role of bundle.roles) {
      for (const t of role.tables) for (const c of t.columns) if (c.action === PolicyAction.MASK && c.mask?.strategy) this.maskers.get(c.mask);
    }
    for (const c of bundle.classifications) if (c.defaultMask?.strategy) this.maskers.get(c.defaultMask);
  }

  get version(): string {
    return this.bundle.version;
  }

  role(name: string): CompiledRole | undefined {
    return this.roles.get(name);
  }

  classify(schema: string, table: string, column: string): ClassificationRule | undefined {
    const key = `${schema}.${table}.${column}`;
    let hit = this.classCache.get(key);
    if (hit === undefined) {
      hit = this.classifications.find((c) => c.match(schema, table, column))?.rule ?? null;
      this.classCache.set(key, hit);
    }
    return hit ?? undefined;
  }
}

export { PolicyLoadError };
