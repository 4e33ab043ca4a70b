/**
 * Child processes for tests and benchmarks: free ports, waiting for a port
 * or a log line, and output kept so a failure shows what the process said.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from the sources or from dist/ alike (the directory holding package.json's workspaces). */
export const REPO_ROOT = ((): string => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // test/support → root; dist/test/support → root
  return here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
})();

/**
 * Node options the agent runs with in production (deploy/docker, deploy/systemd): one V8 thread.
 * The agent is one event loop; V8's helper threads (concurrent GC and compilation) only add
 * wake-ups and context switches on a busy host (`make bench`: 5–10% more transactions per second).
 */
export const AGENT_NODE_OPTIONS = ['--single-threaded'];

/** How to run one of the project's entry points: TypeScript through tsx (tests) or the compiled JS (bench). */
export function entryCommand(tsEntry: string, mode: 'tsx' | 'dist', nodeOptions: string[] = []): string[] {
  return mode === 'tsx'
    ? [process.execPath, ...nodeOptions, '--import', 'tsx', path.join(REPO_ROOT, tsEntry)]
    : [process.execPath, ...nodeOptions, path.join(REPO_ROOT, 'dist', tsEntry.replace(/\.ts$/, '.js'))];
}

export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

export async function waitForPort(port: number, child: ChildProcess, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on ${port}`);
}

export interface LoggedProcess {
  readonly child: ChildProcess;
  readonly name: string;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  /** Resolves with the first output line matching `re`; rejects if the process exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends the signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export function spawnLogged(name: string, command: string[], env: NodeJS.ProcessEnv = {}): LoggedProcess {
  const child = spawn(command[0]!, command.slice(1), { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<{ re: RegExp; resolve: (line: string) => void }>();
  const onData = (chunk: Buffer): void => {
    const before = text.length;
    text += chunk.toString('utf8');
    // Look at whole lines only (from the start of the line the chunk continued).
    const from = text.lastIndexOf('\n', before - 1) + 1;
    for (const line of text.slice(from).split('\n')) {
      for (const w of waiters) {
        if (w.re.test(line)) {
          waiters.delete(w);
          w.resolve(line);
        }
      }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const proc: LoggedProcess = {
    child,
    name,
    output: () => text,
    exited,
    waitFor(re, timeoutMs = 20_000) {
      const seen = text.split('\n').find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = {
          re,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const fail = (why: string): void => {
          waiters.delete(w);
          reject(new Error(`${name}: ${why} while waiting for ${re}\n--- output ---\n${text.slice(-4000)}`));
        };
        const timer = setTimeout(() => fail(`nothing after ${timeoutMs} ms`), timeoutMs);
        waiters.add(w);
        void exited.then((code) => {
          if (waiters.has(w)) {
            clearTimeout(timer);
            fail(`exited with ${code}`);
          }
        });
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  return proc;
}
