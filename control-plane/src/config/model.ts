/**
 * The repository as typed objects, each remembering the document and path
 * it came from, so semantic checks and the compiler can point back at the
 * exact line. Built only from documents that passed their schema.
 */
import { BUILTIN_STRATEGIES, toSnake } from './builtins.js';
import { formatPath } from './schema-check.js';
import type {
  ApprovalRuleSpec,
  ClassificationRuleSpec,
  ConfigDocument,
  Diagnostic,
  IdentitySpec,
  ListenerSpec,
  MaskingStrategySpec,
  MaskSpecSpec,
  PathSegment,
  PolicyTestSpec,
  RoleSpec,
  Severity,
  SpecByKind,
  TargetSpec,
} from './types.js';

export interface Located<T> {
  spec: T;
  doc: ConfigDocument;
  /** Path of `spec` from the document root, e.g. ['spec'] or ['spec', 'rules', 3]. */
  path: PathSegment[];
}

export interface Model {
  targets: Located<TargetSpec>[];
  listeners: Located<ListenerSpec>[];
  identities: Located<IdentitySpec>[];
  roles: Located<RoleSpec>[];
  /** Every Classification document's rules, concatenated in repository order. */
  classifications: Located<ClassificationRuleSpec>[];
  strategies: Located<MaskingStrategySpec>[];
  approvals: Located<ApprovalRuleSpec>[];
  tests: Located<PolicyTestSpec>[];
}

export function buildModel(docs: ConfigDocument[]): Model {
  const m: Model = { targets: [], listeners: [], identities: [], roles: [], classifications: [], strategies: [], approvals: [], tests: [] };
  const loc = <K extends keyof SpecByKind>(doc: ConfigDocument): Located<SpecByKind[K]> => ({ spec: doc.spec as SpecByKind[K], doc, path: ['spec'] });
  for (const doc of docs) {
    switch (doc.kind) {
      case 'Target': m.targets.push(loc<'Target'>(doc)); break;
      case 'Listener': m.listeners.push(loc<'Listener'>(doc)); break;
      case 'Identity': m.identities.push(loc<'Identity'>(doc)); break;
      case 'Role': {
        // Roles for HTTP / SSH targets have no tables; the rest of the compiler reads `tables` as a list.
        const r = loc<'Role'>(doc);
        if (!r.spec.tables) r.spec = { ...r.spec, tables: [] };
        m.roles.push(r);
        break;
      }
      case 'MaskingStrategy': m.strategies.push(loc<'MaskingStrategy'>(doc)); break;
      case 'ApprovalRule': m.approvals.push(loc<'ApprovalRule'>(doc)); break;
      case 'PolicyTest': m.tests.push(loc<'PolicyTest'>(doc)); break;
      case 'Classification':
        (doc.spec as SpecByKind['Classification']).rules.forEach((spec, i) => m.classifications.push({ spec, doc, path: ['spec', 'rules', i] }));
        break;
    }
  }
  return m;
}

export function diag(severity: Severity, where: { doc: ConfigDocument; path: PathSegment[] }, sub: PathSegment[], code: string, message: string): Diagnostic {
  const segments = [...where.path, ...sub];
  return { severity, file: where.doc.file, line: where.doc.lineAt?.(segments) ?? where.doc.line, path: formatPath(segments), code, message };
}

/** Declared strategies first; built-ins fill in names nobody declared. */
export function strategyLookup(model: Model): Map<string, MaskingStrategySpec> {
  const map = new Map<string, MaskingStrategySpec>(Object.entries(BUILTIN_STRATEGIES));
  for (const s of model.strategies) if (!Object.hasOwn(BUILTIN_STRATEGIES, s.spec.name)) map.set(s.spec.name, s.spec);
  return map;
}

export interface NormalizedMask {
  strategy: string;
  params: Record<string, string>;
}

/** camelCase params become proto field names; values become strings, as MaskSpec carries them. */
export function normalizeMask(spec: MaskSpecSpec): NormalizedMask {
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(spec.params ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    params[toSnake(k)] = String(v);
  }
  return { strategy: spec.strategy, params };
}

export function sameMask(a: NormalizedMask | undefined, b: NormalizedMask | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

export function describeMask(m: NormalizedMask): string {
  const p = Object.entries(m.params);
  return p.length === 0 ? m.strategy : `${m.strategy}(${p.map(([k, v]) => `${k}=${v}`).join(',')})`;
}

// ---------------------------------------------------------------- rule ids

/**
 * Ids are what audit records cite, so generated ones should survive
 * unrelated edits: classification ids derive from the pattern (stable when
 * other files change); role ids from the role name and position, which is
 * what an author sees when reading the role.
 */
export function classificationIds(rules: Located<ClassificationRuleSpec>[]): string[] {
  const used = new Map<string, number>();
  return rules.map((r) => {
    if (r.spec.id) return r.spec.id;
    const base = `classification/${r.spec.pattern}`;
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    return n === 1 ? base : `${base}#${n}`;
  });
}

export function tableRuleId(role: RoleSpec, ti: number): string {
  return role.tables[ti]?.id ?? `role/${role.name}/table/${ti}`;
}

export function columnRuleId(role: RoleSpec, ti: number, ci: number): string {
  return role.tables[ti]?.columns?.[ci]?.id ?? `role/${role.name}/table/${ti}/column/${ci}`;
}

/** Classification rules that can apply on at least one of the role's targets. */
export function appliesToRole(rule: ClassificationRuleSpec, role: RoleSpec): boolean {
  return !rule.targets || rule.targets.length === 0 || rule.targets.some((t) => role.targets.includes(t));
}

export function httpRouteId(role: RoleSpec, i: number): string {
  return role.http?.routes?.[i]?.id ?? `role/${role.name}/http/${i}`;
}
