/**
 * Starts the things a benchmark compares, each as its own process as in
 * production: the Warden agent (compiled JS) and pgbouncer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { AgentConfig } from '../../agent/src/config/types.js';
import { AGENT_NODE_OPTIONS, entryCommand, freePort, waitForPort } from '../../test/support/processes.js';

export { freePort, waitForPort };

export async function startAgentProcess(dir: string, config: AgentConfig, port: number, name = 'agent', env: Record<string, string> = {}): Promise<ChildProcess> {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, stringify(config));
  const [node, ...args] = entryCommand('agent/src/main.ts', 'dist', AGENT_NODE_OPTIONS);
  const child = spawn(node!, [...args, '--config', file], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, WARDEN_LOG_LEVEL: 'warn', ...env },
  });
  await waitForPort(port, child, 'agent');
  return child;
}

/** The runtime floor: a bare Node.js pipe to the upstream (lib/node-pipe.ts). */
export async function startNodePipe(port: number, upstream: { host: string; port: number }): Promise<ChildProcess> {
  const [node, ...args] = entryCommand('bench/lib/node-pipe.ts', 'dist');
  const child = spawn(node!, [...args, String(port), upstream.host, String(upstream.port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitForPort(port, child, 'node pipe');
  return child;
}

/** pgbouncer refuses to run as root; -u drops to the postgres user, which must read the config. */
export async function startPgbouncer(dir: string, upstream: { host: string; port: number; user: string; database: string }, port: number, poolSize: number): Promise<ChildProcess> {
  fs.chmodSync(dir, 0o777); // pgbouncer runs as postgres and writes its log and pid here
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(
    ini,
    `[databases]
${upstream.database} = host=${upstream.host} port=${upstream.port} dbname=${upstream.database} user=${upstream.user}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = any
pool_mode = session
default_pool_size = ${poolSize}
max_client_conn = ${poolSize * 4}
log_connections = 0
log_disconnections = 0
logfile = ${path.join(dir, 'pgbouncer.log')}
pidfile = ${path.join(dir, 'pgbouncer.pid')}
`,
  );
  fs.chmodSync(ini, 0o644);
  const bin = fs.existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer';
  const args = process.getuid?.() === 0 ? ['-u', 'postgres', ini] : [ini];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port, child, 'pgbouncer');
  return child;
}

export function peakRssKb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux everywhere it matters). */
const USER_HZ = 100;

/** CPU time (user and system, all threads) a process has used so far, in microseconds. */
export function cpuMicros(pid: number): { user: number; system: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime is the 12th, stime the 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1e6) / USER_HZ, system: (Number(fields[12]) * 1e6) / USER_HZ };
}
