/**
 * GitOps for the control plane: watch a config repository, compile each new
 * commit, keep serving the last good bundle when one fails, and accept push
 * webhooks that make a change take effect immediately.
 */
export { RepoSource, ConfigFileError, type RepoSourceConfig, type CommitInfo, type GitPerson } from './repo-source.js';
export {
  RepoWatcher,
  formatDiagnostic,
  type AppliedBundle,
  type Attempt,
  type CompileFn,
  type CompileOutput,
  type RepoWatcherOptions,
  type RunResult,
  type SourceFailure,
  type WatchDiagnostic,
  type WatcherEvents,
  type WatchSource,
} from './watcher.js';
export { gitWebhook, authenticate, GIT_HOOK_PATH, type GitWebhookOptions, type HookReply, type PushPayload } from './webhook.js';
export { configCompiler, type PolicyBundle } from './config-compiler.js';
