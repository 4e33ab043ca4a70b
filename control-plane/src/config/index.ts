/**
 * The declarative config of a Warden repository: load YAML documents,
 * validate them and compile them into a PolicyBundle. Used by the control
 * plane's git watcher, the `warden validate` / `warden schema` CLI, and the
 * agent's single-file mode (which wraps its file as documents).
 */
export { loadConfigDir, loadConfigFiles, parseConfigText, isConfigPath } from './load.js';
export { validateDocuments } from './validate.js';
export {
  compileBundle,
  compileStrategy,
  COMPILER_VERSION,
  SCHEMA_VERSION,
  DEFAULT_STATEMENT_KINDS,
  type CommitInfo,
  type CompileOptions,
  type CompileResult,
} from './compile.js';
export { schemas, SECRET_REF_PATTERN, NAME_PATTERN } from './schemas.js';
export { BUILTIN_STRATEGIES, RESTRICTED_ZIP3 } from './builtins.js';
export { formatDiagnostics, type DiagnosticFormat } from './github-annotations.js';
export { patternCovers, patternMatches, patternsIntersect } from './patterns.js';
export {
  API_VERSION,
  KINDS,
  type ConfigDocument,
  type Diagnostic,
  type Kind,
  type PathSegment,
  type PolicyTestCase,
  type Severity,
  type SpecByKind,
} from './types.js';
