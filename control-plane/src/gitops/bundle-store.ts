/**
 * Every good bundle the control plane applied, in PostgreSQL: a restarted
 * control plane (or a new replica) serves the last one at once, even while
 * the branch tip is a commit it rejects, instead of having nothing to give
 * agents until the next good commit.
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { PolicyBundleSchema, type PolicyBundle } from '../../../proto/src/index.js';
import { SchemaTables } from '../db/schema-tables.js';
import type { CommitInfo } from './repo-source.js';
import type { AppliedBundle } from './watcher.js';

export class BundleStore extends SchemaTables {
  /** Records a bundle as applied now (again, if the branch went back to it). */
  async save(applied: AppliedBundle<PolicyBundle>): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.t('config_bundles')} (version, compiler_version, commit_info, bundle, warnings) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (version) DO UPDATE SET applied_at = now()`,
      [applied.sha, applied.bundle.compilerVersion, JSON.stringify(applied.commit), Buffer.from(toBinary(PolicyBundleSchema, applied.bundle)), JSON.stringify(applied.diagnostics)],
    );
  }

  /** The bundle applied most recently, if it was compiled by `compilerVersion` (an older compiler's output is recompiled instead). */
  async latest(compilerVersion: string): Promise<AppliedBundle<PolicyBundle> | undefined> {
    const row = (
      await this.pool.query<{ version: string; compiler_version: string; commit_info: CommitInfo & { committedAt: string }; bundle: Buffer; warnings: AppliedBundle<PolicyBundle>['diagnostics']; applied_at: Date }>(
        `SELECT * FROM ${this.t('config_bundles')} ORDER BY applied_at DESC LIMIT 1`,
      )
    ).rows[0];
    if (!row || row.compiler_version !== compilerVersion) return undefined;
    return {
      sha: row.version,
      commit: { ...row.commit_info, committedAt: new Date(row.commit_info.committedAt) },
      bundle: fromBinary(PolicyBundleSchema, row.bundle),
      appliedAt: row.applied_at,
      diagnostics: row.warnings,
    };
  }

  /** Every bundle applied, newest first (evidence: which policy was in force when). */
  async history(): Promise<Array<AppliedBundle<PolicyBundle>>> {
    const rows = (
      await this.pool.query<{ version: string; commit_info: CommitInfo & { committedAt: string }; bundle: Buffer; warnings: AppliedBundle<PolicyBundle>['diagnostics']; applied_at: Date }>(
        `SELECT version, commit_info, bundle, warnings, applied_at FROM ${this.t('config_bundles')} ORDER BY applied_at DESC`,
      )
    ).rows;
    return rows.map((row) => ({
      sha: row.version,
      commit: { ...row.commit_info, committedAt: new Date(row.commit_info.committedAt) },
      bundle: fromBinary(PolicyBundleSchema, row.bundle),
      appliedAt: row.applied_at,
      diagnostics: row.warnings,
    }));
  }
}
