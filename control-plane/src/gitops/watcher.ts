/**
 * Turns a moving branch into a sequence of good bundles. Each new branch tip
 * is read at its commit, compiled once, and either becomes `current` or is
 * rejected with its diagnostics; nothing that fails (a compile error, an
 * unreachable server, an unreadable file) ever displaces the last good
 * bundle, which is what agents keep being served.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { ConfigFileError, type CommitInfo, type RepoSource } from './repo-source.js';

export interface WatchDiagnostic {
  severity: 'error' | 'warning' | 'info';
  file: string;
  line?: number;
  path?: string;
  code: string;
  message: string;
}

export interface CompileOutput<B> {
  /** Must be absent whenever there is an error diagnostic; if both come back, the error wins. */
  bundle?: B | undefined;
  diagnostics: WatchDiagnostic[];
}

export type CompileFn<B> = (files: Record<string, string>, commit: CommitInfo) => CompileOutput<B> | Promise<CompileOutput<B>>;

/** What the watcher needs from a source; RepoSource in production, anything shaped like it in tests. */
export type WatchSource = Pick<RepoSource, 'head' | 'commitInfo' | 'readTree' | 'describe'>;

export interface AppliedBundle<B> {
  sha: string;
  commit: CommitInfo;
  bundle: B;
  appliedAt: Date;
  /** Warnings that came with the bundle. */
  diagnostics: WatchDiagnostic[];
}

export interface Attempt {
  sha: string;
  ok: boolean;
  diagnostics: WatchDiagnostic[];
  at: Date;
}

export interface SourceFailure {
  /** 'fetch': the branch tip could not be learned; 'read': the commit could not be read. */
  stage: 'fetch' | 'read';
  sha?: string;
  message: string;
  at: Date;
}

export type RunResult<B> =
  | { status: 'unchanged'; sha: string }
  | { status: 'applied'; sha: string; bundle: B }
  | { status: 'rejected'; sha: string; diagnostics: WatchDiagnostic[] }
  | { status: 'error'; stage: SourceFailure['stage']; sha?: string; error: string };

export interface WatcherEvents<B> {
  bundle: [applied: AppliedBundle<B>, previousSha: string | undefined];
  rejected: [rejection: { sha: string; commit?: CommitInfo; diagnostics: WatchDiagnostic[]; at: Date }];
  sourceError: [failure: SourceFailure];
}

export interface RepoWatcherOptions<B> {
  source: WatchSource;
  branch: string;
  intervalMs: number;
  compile: CompileFn<B>;
  logger: Logger;
}

export class RepoWatcher<B = unknown> extends EventEmitter<WatcherEvents<B>> {
  /** Last good bundle; only ever replaced by another good one. */
  current: AppliedBundle<B> | undefined;
  /** Last compile of a new tip, good or bad. */
  lastAttempt: Attempt | undefined;
  /** Set while the source is failing (fetch or read), cleared by the next successful read. */
  lastError: SourceFailure | undefined;
  /** Failed runs since start: rejected commits plus source errors. */
  failures = 0;
  /** Compiles performed; lets callers (and tests) see that polling an unchanged tip costs nothing. */
  compiles = 0;

  private readonly source: WatchSource;
  private readonly branch: string;
  private readonly intervalMs: number;
  private readonly compile: CompileFn<B>;
  private readonly log: Logger;
  /** Tip whose outcome is already known; polling it again is a no-op. */
  private lastSeen: string | undefined;
  /** Every run is chained here, so runs never overlap. */
  private tail: Promise<unknown> = Promise.resolve();
  /** A run that has been asked for but has not started: later triggers join it. */
  private waiting: Promise<RunResult<B>> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(options: RepoWatcherOptions<B>) {
    super();
    if (!(options.intervalMs > 0)) throw new Error('intervalMs must be positive');
    this.source = options.source;
    this.branch = options.branch;
    this.intervalMs = options.intervalMs;
    this.compile = options.compile;
    this.log = options.logger.child({ component: 'gitops-watcher', source: options.source.describe(), branch: options.branch });
  }

  /** Checks now, then every intervalMs after each check ends (a slow fetch never stacks up behind itself). */
  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = (): void => {
      void this.triggerNow().finally(() => {
        if (!this.running) return;
        this.timer = setTimeout(tick, this.intervalMs);
        // The HTTP server keeps a control plane alive; the poll timer alone should not.
        this.timer.unref();
      });
    };
    tick();
  }

  /** Stops polling and resolves once any run under way has finished. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.tail;
  }

  /**
   * Fetches and, if the tip moved, compiles. A trigger that arrives while a
   * run is under way gets a fresh run after it (the push it announces may be
   * newer than that run's fetch); any number of triggers in the meantime share
   * that one run. Never rejects: failures are in the result and the state.
   */
  triggerNow(): Promise<RunResult<B>> {
    if (this.waiting) return this.waiting;
    const run: Promise<RunResult<B>> = this.tail.then(() => {
      if (this.waiting === run) this.waiting = undefined;
      return this.runOnce();
    });
    this.waiting = run;
    this.tail = run;
    return run;
  }

  private async runOnce(): Promise<RunResult<B>> {
    const started = performance.now();
    let sha: string;
    try {
      sha = await this.source.head(this.branch);
    } catch (err) {
      return this.sourceFailed('fetch', undefined, err);
    }
    if (this.lastError?.stage === 'fetch') this.lastError = undefined;
    if (sha === this.lastSeen) return { status: 'unchanged', sha };

    // The tip went back to the bundle already in force (e.g. a bad commit was reverted by a force-push): nothing to compile.
    if (this.current?.sha === sha) {
      this.lastSeen = sha;
      this.lastError = undefined;
      this.lastAttempt = { sha, ok: true, diagnostics: this.current.diagnostics, at: new Date() };
      this.log.info({ sha }, 'branch is back at the current bundle');
      return { status: 'unchanged', sha };
    }

    let commit: CommitInfo | undefined;
    let files: Record<string, string>;
    try {
      commit = await this.source.commitInfo(sha);
      files = await this.source.readTree(sha);
    } catch (err) {
      if (err instanceof ConfigFileError) {
        return this.reject(sha, commit, [{ severity: 'error', file: err.file, path: '', code: err.code, message: err.message }]);
      }
      // Not marked as seen: an I/O hiccup reading objects is retried on the next poll.
      return this.sourceFailed('read', sha, err);
    }
    this.lastError = undefined;

    let output: CompileOutput<B>;
    this.compiles++;
    try {
      output = await this.compile(files, commit);
    } catch (err) {
      // Same input, same crash: reported like any other rejection rather than retried every poll.
      const message = err instanceof Error ? err.message : String(err);
      return this.reject(sha, commit, [{ severity: 'error', file: '', path: '', code: 'compiler-crashed', message }]);
    }
    const diagnostics = [...output.diagnostics];
    if (output.bundle === undefined || diagnostics.some((d) => d.severity === 'error')) {
      if (output.bundle === undefined && !diagnostics.some((d) => d.severity === 'error')) {
        diagnostics.push({ severity: 'error', file: '', path: '', code: 'no-bundle', message: 'the compiler produced no bundle and no error' });
      }
      return this.reject(sha, commit, diagnostics);
    }

    // Versions are commit SHAs, not a counter: if the branch is reset to an older commit,
    // that commit becomes current again and agents are sent an "older" version. That is
    // intended: the repository, not the control plane, decides what is in force.
    const previous = this.current?.sha;
    const applied: AppliedBundle<B> = { sha, commit, bundle: output.bundle, appliedAt: new Date(), diagnostics };
    this.current = applied;
    this.lastSeen = sha;
    this.lastAttempt = { sha, ok: true, diagnostics, at: applied.appliedAt };
    this.log.info(
      { sha, previous, warnings: diagnostics.length, ms: Math.round(performance.now() - started) },
      'new policy bundle',
    );
    this.emitSafely('bundle', applied, previous);
    return { status: 'applied', sha, bundle: output.bundle };
  }

  private reject(sha: string, commit: CommitInfo | undefined, diagnostics: WatchDiagnostic[]): RunResult<B> {
    const at = new Date();
    this.lastSeen = sha;
    this.lastAttempt = { sha, ok: false, diagnostics, at };
    this.failures++;
    const errors = diagnostics.filter((d) => d.severity === 'error');
    this.log.warn(
      { sha, current: this.current?.sha, errors: errors.length, first: errors.slice(0, 5).map(formatDiagnostic) },
      'commit rejected; keeping the current bundle',
    );
    this.emitSafely('rejected', { sha, ...(commit ? { commit } : {}), diagnostics, at });
    return { status: 'rejected', sha, diagnostics };
  }

  private sourceFailed(stage: SourceFailure['stage'], sha: string | undefined, err: unknown): RunResult<B> {
    const message = err instanceof Error ? err.message : String(err);
    const failure: SourceFailure = { stage, ...(sha ? { sha } : {}), message, at: new Date() };
    this.lastError = failure;
    this.failures++;
    this.log.warn({ stage, sha, err: message, current: this.current?.sha }, 'cannot read the config repository; keeping the current bundle');
    this.emitSafely('sourceError', failure);
    return { status: 'error', stage, ...(sha ? { sha } : {}), error: message };
  }

  // A throwing listener must not turn an applied bundle into a failed run, nor stop the poll loop.
  private emitSafely<K extends keyof WatcherEvents<B>>(event: K, ...args: WatcherEvents<B>[K]): void {
    try {
      (this as EventEmitter).emit(event, ...args);
    } catch (err) {
      this.log.error({ err, event }, 'watcher listener threw');
    }
  }
}

export function formatDiagnostic(d: WatchDiagnostic): string {
  const where = d.file ? `${d.file}${d.line !== undefined ? `:${d.line}` : ''}` : '<repository>';
  return `${where} ${d.severity} ${d.code}${d.path ? ` at ${d.path}` : ''}: ${d.message}`;
}
