/** Good bundles kept in PostgreSQL: round trip, latest by application time, and a compiler upgrade. */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { services } from '../../../test/support/services.js';
import { compileBundle, loadConfigFiles, COMPILER_VERSION } from '../config/index.js';
import { HOSPITAL_REPO } from '../config/example-repo.js';
import { migrateSchema } from '../db/migrations.js';
import { BundleStore } from './bundle-store.js';
import type { CommitInfo } from './repo-source.js';

const pool = new pg.Pool({ ...services.postgres, max: 2 });
const schema = `bundle_store_${process.pid}`;

afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

function applied(sha: string) {
  const commit: CommitInfo = {
    sha,
    tree: 't'.repeat(40),
    parents: [],
    author: { name: 'Dana Privacy', email: 'dana@hospital.example', timestamp: 1_714_560_000, timezoneOffset: 0 },
    committer: { name: 'Merge Bot', email: 'bot@hospital.example', timestamp: 1_714_560_005, timezoneOffset: 0 },
    message: `commit ${sha}\n`,
    committedAt: new Date(1_714_560_005_000),
  };
  const { bundle } = compileBundle(loadConfigFiles({ ...HOSPITAL_REPO }), commit);
  return { sha, commit, bundle: bundle!, appliedAt: new Date(), diagnostics: [{ severity: 'warning' as const, file: 'roles/billing.yaml', path: 'maxRows', code: 'w', message: 'a warning' }] };
}

describe('BundleStore', () => {
  it('returns the bundle applied last, intact, and nothing for another compiler version', async () => {
    await migrateSchema(pool, schema);
    const store = new BundleStore(pool, schema);
    expect(await store.latest(COMPILER_VERSION)).toBeUndefined();
    const a = applied('a'.repeat(40));
    const b = applied('b'.repeat(40));
    await store.save(a);
    await store.save(b);
    const latest = await store.latest(COMPILER_VERSION);
    expect(latest).toMatchObject({ sha: b.sha, commit: b.commit, diagnostics: b.diagnostics });
    expect(latest!.bundle).toEqual(b.bundle);
    // The branch went back to a: applied again, it is the latest.
    await store.save(a);
    expect((await store.latest(COMPILER_VERSION))?.sha).toBe(a.sha);
    expect(await store.latest('warden-config-compiler/99.0.0')).toBeUndefined();
  });
});
