/**
 * Runs a repository's policy tests (tests/*.yaml: an identity, a target and
 * a SQL statement → the expected decision) with the agent's own analysis
 * and decision engine, so `warden validate` judges a statement exactly as
 * an agent will. Tables come from a catalog snapshot per target kept in the
 * repository (`catalog/<target>.json`), since validation runs without a
 * database.
 */
import { resolveRole, type VerifiedIdentity } from '../../../agent/src/identity/index.js';
import { CompiledPolicy } from '../../../agent/src/policy/compiled-policy.js';
import { decide } from '../../../agent/src/policy/decide.js';
import { ApprovalRules, holdingRule, type ApprovalCandidate } from '../../../agent/src/policy/approval-rules.js';
import { placeholderSecrets } from '../../../agent/src/policy/maskers.js';
import { analyzeSql, loadParser, type CatalogView, type RelationInfo } from '../../../agent/src/sql/index.js';
import type { PolicyBundle } from '../../../proto/src/index.js';
import type { Diagnostic, PolicyTestCase } from './types.js';

/** `catalog/<target>.json`: relations by "schema.name" → column names, or a view with its SQL. */
export interface CatalogSnapshot {
  searchPath?: string[];
  relations: Record<string, string[] | { columns: string[]; view: string }>;
}

export class SnapshotCatalog implements CatalogView {
  readonly searchPath: readonly string[];
  private readonly relations = new Map<string, RelationInfo>();

  constructor(snapshot: CatalogSnapshot) {
    this.searchPath = snapshot.searchPath ?? ['public'];
    let oid = 1;
    for (const [qualified, def] of Object.entries(snapshot.relations)) {
      const [schema, name] = qualified.split('.') as [string, string];
      const columns = Array.isArray(def) ? def : def.columns;
      this.relations.set(qualified, {
        schema,
        name,
        oid: oid++,
        kind: Array.isArray(def) ? 'table' : 'view',
        columns: columns.map((c, i) => ({ name: c, attnum: i + 1, typeOid: 25 })),
        ...(Array.isArray(def) ? {} : { viewDefinition: def.view }),
      });
    }
  }

  relation(schema: string | undefined, name: string): RelationInfo | undefined {
    if (schema) return this.relations.get(`${schema}.${name}`);
    for (const s of this.searchPath) {
      const r = this.relations.get(`${s}.${name}`);
      if (r) return r;
    }
    return undefined;
  }
}

/**
 * The catalog snapshots among a repository's files (`catalog/<target>.json` → target). A snapshot that is not
 * valid JSON is an error diagnostic, and the tests of its target then fail for want of a catalog.
 */
export function catalogsFromFiles(files: Record<string, string>): { catalogs: Map<string, CatalogView>; diagnostics: Diagnostic[] } {
  const catalogs = new Map<string, CatalogView>();
  const diagnostics: Diagnostic[] = [];
  for (const [file, text] of Object.entries(files)) {
    const m = /^catalog\/([^/]+)\.json$/.exec(file);
    if (!m) continue;
    try {
      catalogs.set(m[1]!, new SnapshotCatalog(JSON.parse(text) as CatalogSnapshot));
    } catch (err) {
      diagnostics.push({ severity: 'error', file, path: '', code: 'catalog-invalid', message: `catalog snapshot is not valid: ${(err as Error).message}` });
    }
  }
  return { catalogs, diagnostics };
}

export interface PolicyTestResult {
  test: PolicyTestCase;
  ok: boolean;
  /** What the engine decided, for the report. */
  got: string;
  problem?: string;
}

function roleFor(bundle: PolicyBundle, t: PolicyTestCase): string {
  if (t.identity.role) return t.identity.role;
  const identity: VerifiedIdentity = { subject: t.identity.subject, issuer: '', groups: t.identity.groups, expiresAt: new Date(0), audience: [] };
  const mappings = (bundle.identity?.groupMappings ?? []).map((m) => ({ group: m.group, role: m.role }));
  return resolveRole(identity, mappings);
}

export async function runPolicyTests(bundle: PolicyBundle, tests: PolicyTestCase[], catalogs: Map<string, CatalogView>): Promise<PolicyTestResult[]> {
  await loadParser();
  const compiled = new Map<string, CompiledPolicy>();
  const approvalRules = new Map<string, ApprovalRules>();
  const results: PolicyTestResult[] = [];
  for (const t of tests) {
    const fail = (got: string, problem: string): void => void results.push({ test: t, ok: false, got, problem });
    const catalog = catalogs.get(t.target);
    if (!catalog) {
      fail('-', `no catalog snapshot for target "${t.target}" (catalog/${t.target}.json)`);
      continue;
    }
    let policy = compiled.get(t.target);
    if (!policy) compiled.set(t.target, (policy = new CompiledPolicy(bundle, t.target, '.', placeholderSecrets)));
    let roleName: string;
    try {
      roleName = roleFor(bundle, t);
    } catch (err) {
      fail('refused at login', (err as Error).message);
      continue;
    }
    const role = policy.role(roleName);
    if (!role) {
      fail('-', `role "${roleName}" is not in the bundle`);
      continue;
    }
    let decision;
    let held: ApprovalCandidate | undefined;
    try {
      const analyses = analyzeSql(t.sql, catalog);
      decision = decide(analyses, role);
      let rules = approvalRules.get(t.target);
      if (!rules) approvalRules.set(t.target, (rules = new ApprovalRules(bundle, t.target)));
      const candidates = rules.candidates(role, analyses, decision, decision.statements.map((s) => s.kind));
      // Without `at`, time windows are taken to hold. Row-limit rules depend on the data, not the statement: never "hold" here.
      held = t.at ? holdingRule(candidates, new Date(t.at)) : candidates.find((c) => !c.rowLimit);
    } catch (err) {
      decision = { action: 'deny' as const, reason: (err as Error).message, maskedColumns: [], ruleIds: [], statements: [] };
    }
    const action = held ? 'hold' : decision.action;
    const got = decision.action === 'deny' ? `deny (${decision.reason})` : held ? `hold (${held.rule.id})` : decision.action;
    if (t.expect.approvalRule !== undefined && held?.rule.id !== t.expect.approvalRule) {
      fail(got, `expected approval rule ${t.expect.approvalRule} to hold the statement; ${held ? `${held.rule.id} holds it` : 'no rule holds it'}`);
      continue;
    }
    if (action !== t.expect.decision) {
      fail(got, `expected ${t.expect.decision}, got ${got}`);
      continue;
    }
    const masked = decision.maskedColumns.map((m) => m.column);
    const missing = t.expect.maskedColumns.filter((c) => !masked.some((m) => m === c || m.endsWith(`.${c}`)));
    if (missing.length > 0) {
      fail(got, `expected ${missing.join(', ')} masked; masked: ${masked.join(', ') || 'none'}`);
      continue;
    }
    if (t.expect.deniedMatches && !new RegExp(t.expect.deniedMatches).test(decision.reason ?? '')) {
      fail(got, `denial "${decision.reason}" does not match /${t.expect.deniedMatches}/`);
      continue;
    }
    results.push({ test: t, ok: true, got });
  }
  return results;
}

export function testDiagnostics(results: PolicyTestResult[]): Diagnostic[] {
  return results
    .filter((r) => !r.ok)
    .map((r) => ({ severity: 'error' as const, file: r.test.file, line: r.test.line, path: '', code: 'policy-test-failed', message: `${r.test.name}: ${r.problem}` }));
}
