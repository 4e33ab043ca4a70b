/**
 * The production compile step for the watcher: the config package's loader
 * and compiler, adapted to the watcher's (files, commit) signature. Kept
 * apart from the watcher so the watcher can be exercised with any compiler.
 */
import { compileBundle, loadConfigFiles, type CompileOptions, type CompileResult } from '../config/index.js';
import type { CompileFn, CompileOutput } from './watcher.js';

export type PolicyBundle = NonNullable<CompileResult['bundle']>;

export function configCompiler(options: CompileOptions = {}): CompileFn<PolicyBundle> {
  return (files, commit): CompileOutput<PolicyBundle> & Pick<CompileResult, 'tests'> => {
    // A fresh clock per compile unless the caller pinned one (reproducible builds, tests).
    const result = compileBundle(loadConfigFiles(files), commit, options);
    return { bundle: result.bundle, diagnostics: result.diagnostics, tests: result.tests };
  };
}
