/**
 * `warden validate [path]`: schema, cross-file checks and policy tests of a
 * config repository, with output PR checks can annotate.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { compileBundle, formatDiagnostics, loadConfigDir, type Diagnostic, type DiagnosticFormat } from '../config/index.js';
import { catalogsFromFiles, runPolicyTests, testDiagnostics, type PolicyTestResult } from '../config/policy-tests.js';

export interface ValidateOutcome {
  ok: boolean;
  diagnostics: Diagnostic[];
  tests: PolicyTestResult[];
  version?: string;
}

/** catalog/*.json of a working tree, parsed as the control plane parses them from a commit. */
function readCatalogs(dir: string): ReturnType<typeof catalogsFromFiles> {
  const folder = path.join(dir, 'catalog');
  const files = fs.existsSync(folder)
    ? Object.fromEntries(fs.readdirSync(folder).filter((f) => f.endsWith('.json')).map((f) => [`catalog/${f}`, fs.readFileSync(path.join(folder, f), 'utf8')]))
    : {};
  return catalogsFromFiles(files);
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
  const { catalogs, diagnostics: catalogProblems } = readCatalogs(dir);
  const results = await runPolicyTests(bundle, tests, catalogs);
  const all = [...diagnostics, ...catalogProblems, ...testDiagnostics(results)];
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
