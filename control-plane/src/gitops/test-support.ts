/**
 * Test fixtures: real git repositories made with isomorphic-git in temp
 * dirs, and a smart-HTTP server that is canonical git's own `git
 * http-backend` run as CGI behind node:http, with Basic auth in front, so
 * the remote path and its token handling are exercised against real git.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import git from 'isomorphic-git';
import { pino } from 'pino';
import type { CompileFn, WatchDiagnostic } from './watcher.js';

export const silentLogger = pino({ level: 'silent' });

const temps: string[] = [];

export async function tempDir(prefix = 'warden-gitops-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

export async function removeTemps(): Promise<void> {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export interface TestRepo {
  dir: string;
  /** Writes (or, for null, deletes) files, stages them, commits; returns the new SHA. */
  commit(files: Record<string, string | Uint8Array | null>, message?: string): Promise<string>;
  /** Moves the branch to an existing commit, like `git reset --hard` without touching files. */
  reset(sha: string): Promise<void>;
  /** Edits the working tree only, without staging or committing. */
  scribble(file: string, text: string): Promise<void>;
}

export async function makeRepo(branch = 'main', dir?: string): Promise<TestRepo> {
  const root = dir ?? (await tempDir('warden-repo-'));
  await git.init({ fs, dir: root, defaultBranch: branch });
  // Distinct, increasing timestamps keep SHAs distinct even for commits made in the same second.
  let clock = 1_714_560_000;
  const write = async (file: string, content: string | Uint8Array): Promise<void> => {
    const full = path.join(root, file);
    await fs.promises.mkdir(path.dirname(full), { recursive: true });
    await fs.promises.writeFile(full, content);
  };
  return {
    dir: root,
    async commit(files, message = 'update config') {
      for (const [file, content] of Object.entries(files)) {
        if (content === null) {
          await fs.promises.rm(path.join(root, file), { force: true });
          await git.remove({ fs, dir: root, filepath: file });
        } else {
          await write(file, content);
          await git.add({ fs, dir: root, filepath: file });
        }
      }
      clock += 60;
      return git.commit({
        fs,
        dir: root,
        message,
        author: { name: 'Dana Privacy', email: 'dana@hospital.example', timestamp: clock, timezoneOffset: 0 },
        committer: { name: 'Merge Bot', email: 'bot@hospital.example', timestamp: clock + 5, timezoneOffset: 0 },
      });
    },
    async reset(sha) {
      await git.writeRef({ fs, dir: root, ref: `refs/heads/${branch}`, value: sha, force: true });
    },
    scribble: write,
  };
}

/** Fake compiler: a file containing `invalid: true` is an error; otherwise the "bundle" lists the files. */
export function fakeCompiler(): CompileFn<{ sha: string; files: string[] }> & { calls: string[] } {
  const calls: string[] = [];
  const fn = (files: Record<string, string>, commit: { sha: string }) => {
    calls.push(commit.sha);
    const diagnostics: WatchDiagnostic[] = [];
    for (const [file, text] of Object.entries(files)) {
      const at = text.split('\n').findIndex((l) => /^\s*invalid:\s*true\s*$/.test(l));
      if (at >= 0) diagnostics.push({ severity: 'error', file, line: at + 1, path: 'invalid', code: 'test-invalid', message: 'marked invalid' });
    }
    if (diagnostics.length > 0) return { diagnostics };
    return { bundle: { sha: commit.sha, files: Object.keys(files) }, diagnostics };
  };
  return Object.assign(fn, { calls });
}

export interface GitHttpServer {
  /** Clone URL of a repository under the project root, e.g. url('config') for <root>/config. */
  url(repo: string): string;
  requests: Array<{ method: string; path: string; status: number }>;
  close(): Promise<void>;
}

/**
 * Serves every repository under `projectRoot` over smart HTTP. With a token,
 * requests without Basic credentials whose password is that token get 401,
 * as GitHub and GitLab answer.
 */
export async function startGitHttpServer(projectRoot: string, token?: string): Promise<GitHttpServer> {
  const requests: GitHttpServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const record = (status: number): void => {
      requests.push({ method: req.method ?? '', path: url.pathname, status });
    };
    if (token !== undefined) {
      const header = req.headers.authorization ?? '';
      const [scheme, encoded] = header.split(' ');
      const decoded = scheme === 'Basic' && encoded ? Buffer.from(encoded, 'base64').toString('utf8') : '';
      const password = decoded.slice(decoded.indexOf(':') + 1);
      if (!decoded.includes(':') || password !== token) {
        record(401);
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="git"', 'Content-Type': 'text/plain' });
        res.end('authentication required\n');
        return;
      }
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      REMOTE_USER: token !== undefined ? 'token' : '',
      ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
      ...(req.headers['content-encoding'] ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
      ...(req.headers['git-protocol'] ? { GIT_PROTOCOL: String(req.headers['git-protocol']) } : {}),
    };
    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else res.setHeader(name, value);
      }
      record(status);
      res.statusCode = status;
      res.write(head.subarray(end + 4));
    });
    cgi.stdout.on('end', () => {
      if (!headersDone) {
        record(502);
        res.statusCode = 502;
      }
      res.end();
    });
    cgi.on('error', () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (repo) => `http://127.0.0.1:${port}/${repo}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Resolves with the first emission of `event`, rejecting after `ms`. */
export function nextEvent<T extends unknown[]>(
  emitter: { once(event: string, fn: (...args: T) => void): unknown; off(event: string, fn: (...args: T) => void): unknown },
  event: string,
  ms = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`no ${event} event within ${ms} ms`));
    }, ms);
    const onEvent = (...args: T): void => {
      clearTimeout(timer);
      resolve(args);
    };
    emitter.once(event, onEvent);
  });
}
