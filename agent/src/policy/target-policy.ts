/**
 * Binds a compiled bundle to one target's catalog: for each role it offers
 * the data path a `decide(text)` that costs a normalisation and a map
 * lookup once a statement shape has been seen, and a per-field check by
 * table OID + attribute number for results.
 *
 * Statements that differ only in literals share one analysis and one
 * decision (the normalised text is the key); anything whose decision would
 * depend on a literal is refused by kind in decide.ts, never judged by value.
 */
import type { PolicyBundle } from '../../../proto/src/index.js';
import { CompiledPolicy, type CompiledRole } from './compiled-policy.js';
import { decide, type Decision } from './decide.js';
import { ApprovalRules } from './approval-rules.js';
import type { Masker } from '../masking/index.js';
import { normalizeSql, analyzeSql, type CatalogView } from '../sql/index.js';

/** The catalog facts the agent needs beyond what analysis reads. */
export interface TargetCatalog extends CatalogView {
  /** Monotonic: bumps whenever the catalog was reloaded (cached analyses become stale). */
  readonly version: number;
  attribute(tableOid: number, attnum: number): { schema: string; table: string; column: string } | undefined;
}

const MAX_CACHED = 10_000;

export interface SessionPolicy {
  decide(text: string): Decision;
  field(tableOid: number, attnum: number): Masker | 'deny' | undefined;
  readonly maxRows: number;
  readonly truncate: boolean;
  readonly restrictsPhi: boolean;
}

export class TargetPolicy {
  readonly compiled: CompiledPolicy;
  private readonly decisions = new Map<string, Map<string, Decision>>();
  private catalogVersion = -1;
  /** Analyses (by normalised text) are shared across roles. */
  private readonly analyses = new Map<string, ReturnType<typeof analyzeSql>>();

  constructor(
    bundle: PolicyBundle,
    readonly target: string,
    baseDir: string,
    private readonly catalog: TargetCatalog,
  ) {
    this.compiled = new CompiledPolicy(bundle, target, baseDir);
    this.approvalRules = new ApprovalRules(bundle, target);
  }

  private readonly approvalRules: ApprovalRules;

  get version(): string {
    return this.compiled.version;
  }

  private analysis(text: string, key: string): ReturnType<typeof analyzeSql> {
    let a = this.analyses.get(key);
    if (!a) {
      a = analyzeSql(text, this.catalog);
      if (this.analyses.size >= MAX_CACHED) this.analyses.delete(this.analyses.keys().next().value!);
      this.analyses.set(key, a);
    }
    return a;
  }

  private decideFor(role: CompiledRole, text: string): Decision {
    if (this.catalog.version !== this.catalogVersion) {
      // DDL happened somewhere: every cached shape may now resolve differently.
      this.analyses.clear();
      this.decisions.clear();
      this.catalogVersion = this.catalog.version;
    }
    const key = normalizeSql(text).key;
    let perRole = this.decisions.get(role.name);
    if (!perRole) this.decisions.set(role.name, (perRole = new Map()));
    let d = perRole.get(key);
    if (!d) {
      const analyses = this.analysis(text, key);
      d = decide(analyses, role);
      const approvals = this.approvalRules.candidates(role, analyses, d, d.statements.map((s) => s.kind));
      if (approvals.length > 0) d.approvals = approvals;
      if (perRole.size >= MAX_CACHED) perRole.delete(perRole.keys().next().value!);
      perRole.set(key, d);
    }
    return d;
  }

  forRole(name: string): SessionPolicy | null {
    const role = this.compiled.role(name);
    if (!role) return null;
    return {
      decide: (text) => this.decideFor(role, text),
      field: (oid, attnum) => {
        const col = this.catalog.attribute(oid, attnum);
        if (!col) return undefined;
        const d = role.column(col.schema, col.table, col.column);
        return d.action === 'deny' ? 'deny' : d.action === 'mask' ? d.masker : undefined;
      },
      maxRows: role.maxRows,
      truncate: role.truncateOverLimit,
      restrictsPhi: role.restrictsPhi,
    };
  }
}
