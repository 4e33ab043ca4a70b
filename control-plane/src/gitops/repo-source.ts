/**
 * Read-only access to a config repository through isomorphic-git. Every
 * read goes through git objects at a given commit, never through a working
 * tree: what gets compiled is exactly what was committed, so an operator's
 * uncommitted edit on the control-plane host cannot become policy.
 */
import fs from 'node:fs';
import path from 'node:path';
import git from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';
import type { GitHttpRequest, HttpClient } from 'isomorphic-git';

export type RepoSourceConfig =
  | { kind: 'local'; dir: string }
  | {
      kind: 'remote';
      url: string;
      branch: string;
      /** Already resolved from its secret reference; never logged. */
      token?: string;
      /**
       * Basic-auth user sent with the token. 'x-access-token' is accepted by
       * GitHub (PATs and app tokens) and GitLab (which ignores the user for tokens).
       */
      username?: string;
      /** Bare repository the remote is fetched into; created on first use. */
      cacheDir: string;
      /** Whole-fetch deadline; without one a stalled server would stall the watcher forever. */
      fetchTimeoutMs?: number;
    };

export interface GitPerson {
  name: string;
  email: string;
  /** Seconds since the epoch, as git stores it. */
  timestamp: number;
  /** Minutes, as isomorphic-git reports it (git's sign convention inverted). */
  timezoneOffset: number;
}

/** Structurally a superset of config's CommitInfo, so it can be handed to compileBundle as is. */
export interface CommitInfo {
  sha: string;
  tree: string;
  parents: string[];
  author: GitPerson;
  committer: GitPerson;
  message: string;
  /** The committer date: when the commit entered the branch's history. */
  committedAt: Date;
}

/**
 * A problem with the content of one file (not with reaching the repository):
 * deterministic for a commit, so the watcher reports it like a compile
 * diagnostic instead of retrying.
 */
export class ConfigFileError extends Error {
  constructor(
    readonly file: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigFileError';
  }
}

const CONFIG_FILE = /\.ya?ml$/i;
/** Catalog snapshots the policy tests run against (see config/policy-tests.ts). */
const CATALOG_FILE = /^catalog\/[^/]+\.json$/;
// Conservative subset of git-check-ref-format: enough to keep a configured branch from naming something else.
const BRANCH_NAME = /^(?!-)(?!.*\.\.)(?!.*\/\/)(?!.*@\{)(?!\/)(?!.*\/$)(?!.*\.lock$)[A-Za-z0-9._\/-]+$/;
const DEFAULT_FETCH_TIMEOUT_MS = 60_000;

function assertBranch(branch: string): void {
  if (!BRANCH_NAME.test(branch)) throw new Error(`invalid branch name ${JSON.stringify(branch)}`);
}

export class RepoSource {
  private readonly config: RepoSourceConfig;
  private gitdirPromise: Promise<string> | undefined;
  // Fetches into one cache directory must not interleave (refs and the shallow file are rewritten).
  private fetchChain: Promise<unknown> = Promise.resolve();

  constructor(config: RepoSourceConfig) {
    if (config.kind === 'remote') assertBranch(config.branch);
    this.config = config;
  }

  get kind(): RepoSourceConfig['kind'] {
    return this.config.kind;
  }

  /** For logs: the local path, or the URL without any user-info. */
  describe(): string {
    if (this.config.kind === 'local') return this.config.dir;
    try {
      const u = new URL(this.config.url);
      u.username = '';
      u.password = '';
      return u.toString();
    } catch {
      return '<unparseable url>';
    }
  }

  /**
   * SHA of the branch tip. For a remote this fetches first (depth 1: only the
   * tip's objects are needed to compile it), so it reflects the server now.
   */
  async head(branch?: string): Promise<string> {
    const name = branch ?? (this.config.kind === 'remote' ? this.config.branch : undefined);
    if (name === undefined) throw new Error('head(): a branch is required for a local source');
    assertBranch(name);
    const gitdir = await this.gitdir();
    if (this.config.kind === 'local') {
      return git.resolveRef({ fs, gitdir, ref: `refs/heads/${name}` });
    }
    const remote = this.config;
    const run = this.fetchChain.then(() => this.fetch(remote, gitdir, name));
    this.fetchChain = run.catch(() => undefined);
    return run;
  }

  async commitInfo(sha: string): Promise<CommitInfo> {
    const gitdir = await this.gitdir();
    const { oid, commit } = await git.readCommit({ fs, gitdir, oid: sha });
    const person = (p: typeof commit.author): GitPerson => ({
      name: p.name,
      email: p.email,
      timestamp: p.timestamp,
      timezoneOffset: p.timezoneOffset,
    });
    return {
      sha: oid,
      tree: commit.tree,
      parents: [...commit.parent],
      author: person(commit.author),
      committer: person(commit.committer),
      message: commit.message,
      committedAt: new Date(commit.committer.timestamp * 1000),
    };
  }

  /**
   * Every *.yaml / *.yml blob in the commit's tree and every catalog/*.json
   * snapshot, path → UTF-8 text, keys
   * in path order. Symlinks and submodules are skipped: their targets are
   * not part of this commit's content.
   */
  async readTree(sha: string): Promise<Record<string, string>> {
    const gitdir = await this.gitdir();
    // Per call, not per source: a long-lived pack cache would outlive a `git gc` of a local repository.
    const cache = {};
    const found: Array<[string, string]> = [];
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const visit = async (oid: string, prefix: string): Promise<void> => {
      const { tree } = await git.readTree({ fs, gitdir, oid, cache });
      await Promise.all(
        tree.map(async (entry) => {
          const file = prefix + entry.path;
          if (entry.type === 'tree') return visit(entry.oid, `${file}/`);
          if (entry.type !== 'blob' || entry.mode === '120000' || !(CONFIG_FILE.test(entry.path) || CATALOG_FILE.test(file))) return;
          const { blob } = await git.readBlob({ fs, gitdir, oid: entry.oid, cache });
          let text: string;
          try {
            text = decoder.decode(blob);
          } catch {
            throw new ConfigFileError(file, 'invalid-encoding', `${file} is not valid UTF-8`);
          }
          found.push([file, text]);
        }),
      );
    };
    await visit(sha, '');
    found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(found);
  }

  private gitdir(): Promise<string> {
    if (!this.gitdirPromise) {
      const lookup = this.resolveGitdir();
      this.gitdirPromise = lookup;
      // A failed lookup (e.g. the repository not created yet) is retried on the next call.
      lookup.catch(() => {
        if (this.gitdirPromise === lookup) this.gitdirPromise = undefined;
      });
    }
    return this.gitdirPromise;
  }

  private async resolveGitdir(): Promise<string> {
    if (this.config.kind === 'remote') {
      const gitdir = this.config.cacheDir;
      await fs.promises.mkdir(gitdir, { recursive: true });
      await git.init({ fs, gitdir, bare: true, defaultBranch: this.config.branch });
      // fetch() needs the remote's refspec to know where tracking refs go. The URL stored
      // is the credential-free one (fetch is always given the real URL), so no secret lands on disk.
      await git.addRemote({ fs, gitdir, remote: 'origin', url: this.describe(), force: true });
      return gitdir;
    }
    const dir = path.resolve(this.config.dir);
    const dotGit = path.join(dir, '.git');
    const st = await fs.promises.stat(dotGit).catch(() => undefined);
    if (st?.isDirectory()) return dotGit;
    if (st?.isFile()) throw new Error(`${dir}: .git is a file (worktree or submodule); point the source at the main repository`);
    // A bare repository: the directory itself holds HEAD and objects/.
    const bare = await fs.promises.stat(path.join(dir, 'objects')).catch(() => undefined);
    if (bare?.isDirectory()) return dir;
    throw new Error(`${dir} is not a git repository`);
  }

  private async fetch(remote: Extract<RepoSourceConfig, { kind: 'remote' }>, gitdir: string, branch: string): Promise<string> {
    const signal = AbortSignal.timeout(remote.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS);
    // isomorphic-git's fetch() takes no signal itself, so every request it makes is given ours.
    const http: HttpClient = {
      request: (req: GitHttpRequest) => nodeHttp.request({ ...req, signal }),
    };
    const token = remote.token;
    try {
      const result = await git.fetch({
        fs,
        http,
        gitdir,
        url: remote.url,
        // The local tracking ref doubles as the "have" we tell the server about, so later fetches stay small.
        ref: `refs/remotes/origin/${branch}`,
        remoteRef: `refs/heads/${branch}`,
        singleBranch: true,
        depth: 1,
        tags: false,
        // Only consulted after a 401, so a tokenless public repository still works.
        ...(token ? { onAuth: () => ({ username: remote.username ?? 'x-access-token', password: token }) } : {}),
      });
      if (!result.fetchHead) throw new Error(`branch ${branch} not found at ${this.describe()}`);
      return result.fetchHead;
    } catch (err) {
      throw redact(err, token, signal.aborted ? `fetch of ${this.describe()} timed out` : undefined);
    }
  }
}

/** Errors can quote server responses; make sure the token never leaves in one. */
function redact(err: unknown, token: string | undefined, replacement: string | undefined): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  let message = replacement ?? e.message;
  if (token) message = message.split(token).join('***');
  if (message === e.message) return e;
  const out = new Error(message, { cause: token ? undefined : e });
  out.name = e.name;
  return out;
}
