/**
 * Runs the real `warden-agent` entry point (agent/src/main.ts) as a child
 * process with a config file, capturing every line it logs, and reads the
 * bound ports from its own log lines (listeners bind port 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { AgentConfig } from '../../agent/src/config/types.js';

export interface AgentProcess {
  child: ChildProcess;
  dir: string;
  pgPort: number;
  /** Set when the config or args asked for the ops endpoint. */
  opsPort?: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the process if still running and removes its folder. */
  cleanup(): Promise<void>;
}

export async function startAgentProcess(config: AgentConfig, opts: { env?: Record<string, string>; args?: string[] } = {}): Promise<AgentProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-agent-proc-'));
  const file = path.join(dir, 'agent.yaml');
  fs.writeFileSync(file, stringify(config));
  const child = spawn(process.execPath, ['--import', 'tsx', 'agent/src/main.ts', '--config', file, ...(opts.args ?? [])], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WARDEN_LOG_LEVEL: 'debug', ...opts.env },
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const wantOps = Boolean(config.ops) || (opts.args ?? []).includes('--ops');
  const lines = (): Array<Record<string, unknown>> =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const deadline = Date.now() + 30_000;
  let pgPort: number | undefined;
  let opsPort: number | undefined;
  let done = false;
  void exited.then(() => (done = true));
  while (Date.now() < deadline && !done) {
    for (const l of lines()) {
      if (l.msg === 'agent started') pgPort = (l.listeners as Record<string, { port: number }>)[config.listeners[0]!.name]!.port;
      if (typeof l.msg === 'string' && l.msg.startsWith('ops endpoint listening')) opsPort = l.port as number;
    }
    if (pgPort !== undefined && (!wantOps || opsPort !== undefined)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (pgPort === undefined || (wantOps && opsPort === undefined)) {
    child.kill('SIGKILL');
    throw new Error(`agent process did not start:\n${out}`);
  }
  return {
    child,
    dir,
    pgPort,
    ...(opsPort !== undefined ? { opsPort } : {}),
    output: () => out,
    exited,
    async cleanup() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
