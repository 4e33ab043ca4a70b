/**
 * The production compile step for the watcher: the config package's loader
 * and compiler, then the repository's policy tests (tests/*.yaml against
 * catalog/*.json), adapted to the watcher's (files, commit) signature. A
 * commit whose policy tests fail is rejected like one that does not compile:
 * it is never distributed. Kept apart from the watcher so the watcher can be
 * exercised with any compiler.
 */
import { compileBundle, loadConfigFiles, type CompileOptions, type CompileResult } from '../config/index.js';
import { catalogsFromFiles, runPolicyTests, testDiagnostics } from '../config/policy-tests.js';
import type { CompileFn, CompileOutput } from './watcher.js';

export type PolicyBundle = NonNullable<CompileResult['bundle']>;

export function configCompiler(options: CompileOptions = {}): CompileFn<PolicyBundle> {
  return async (files, commit): Promise<CompileOutput<PolicyBundle> & Pick<CompileResult, 'tests'>> => {
    // A fresh clock per compile unless the caller pinned one (reproducible builds, tests).
    const result = compileBundle(loadConfigFiles(files), commit, options);
    if (!result.bundle) return { bundle: undefined, diagnostics: result.diagnostics, tests: result.tests };
    const { catalogs, diagnostics: catalogProblems } = catalogsFromFiles(files);
    const failed = testDiagnostics(await runPolicyTests(result.bundle, result.tests, catalogs));
    const diagnostics = [...result.diagnostics, ...catalogProblems, ...failed];
    const ok = !diagnostics.some((d) => d.severity === 'error');
    return { bundle: ok ? result.bundle : undefined, diagnostics, tests: result.tests };
  };
}
