/**
 * `warden validate [path]`: schema, cross-file checks and policy tests of a
 * config repository, with output PR checks can annotate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { compileBundle, formatDiagnostics, loadConfigDir, type Diagnostic, type DiagnosticFormat } from '../config/index.js';
import { runPolicyTests, SnapshotCatalog, testDiagnostics, type CatalogSnapshot, type PolicyTestResult } from '../config/policy-tests.js';
import type { CatalogView } from '../../../agent/src/sql/index.js';

export interface ValidateOutcome {
  ok: boolean;
  diagnostics: Diagnostic[];
  tests: PolicyTestResult[];
  version?: string;
}

function readCatalogs(dir: string): Map<string, CatalogView> {
  const out = new Map<string, CatalogView>();
  const folder = path.join(dir, 'catalog');
  if (!fs.existsSync(folder)) return out;
  for (const f of fs.readdirSync(folder)) {
    if (!f.endsWith('.json')) continue;
    out.set(f.slice(0, -5), new SnapshotCatalog(JSON.parse(fs.readFileSync(path.join(folder, f), 'utf8')) as CatalogSnapshot));
  }
  return out;
}

export async function validateRepository(dir: string): Promise<ValidateOutcome> {
  const docs = await loadConfigDir(dir);
  // Validation has no commit to stamp: the version is a hash of what was read.
  const sha = createHash('sha1').update(JSON.stringify(docs.map((d) => [d.file, d.index, d.spec]))).digest('hex');
  const { bundle, tests, diagnostics } = compileBundle(docs, {
    sha,
    author: { name: 'validate', email: 'validate@localhost' },
    committer: { name: 'validate', email: 'validate@localhost' },
    message: 'working tree',
    committedAt: new Date(),
  });
  if (!bundle) return { ok: false, diagnostics, tests: [] };
  const results = await runPolicyTests(bundle, tests, readCatalogs(dir));
  const all = [...diagnostics, ...testDiagnostics(results)];
  return { ok: !all.some((d) => d.severity === 'error'), diagnostics: all, tests: results, version: bundle.version };
}

export async function validateCommand(dir: string, format: DiagnosticFormat, out: NodeJS.WritableStream): Promise<number> {
  if (!fs.existsSync(dir)) {
    out.write(`warden validate: ${dir}: no such directory\n`);
    return 2;
  }
  const result = await validateRepository(dir);
  if (format === 'json') {
    out.write(JSON.stringify({ ok: result.ok, diagnostics: result.diagnostics, tests: result.tests.map((t) => ({ name: t.test.name, file: t.test.file, ok: t.ok, got: t.got, problem: t.problem })) }, null, 2) + '\n');
  } else {
    if (result.diagnostics.length > 0) out.write(formatDiagnostics(result.diagnostics, format) + '\n');
    if (format === 'text') {
      for (const t of result.tests) out.write(`${t.ok ? 'ok  ' : 'FAIL'} ${t.test.name}${t.ok ? '' : `: ${t.problem}`}\n`);
      const failed = result.tests.filter((t) => !t.ok).length;
      out.write(`${result.ok ? 'valid' : 'invalid'}: ${result.diagnostics.filter((d) => d.severity === 'error').length} errors, ${result.tests.length - failed} policy tests passed, ${failed} failed\n`);
    }
  }
  return result.ok ? 0 : 1;
}
