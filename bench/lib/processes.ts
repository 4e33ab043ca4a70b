/**
 * Starts the things a benchmark compares, each as its own process as in
 * production: the Warden agent (compiled JS) and pgbouncer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { AgentConfig } from '../../agent/src/config/types.js';
import { freePort, waitForPort } from '../../test/support/processes.js';

export { freePort, waitForPort };

export async function startAgentProcess(dir: string, config: AgentConfig, port: number, name = 'agent'): Promise<ChildProcess> {
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, stringify(config));
  const main = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../agent/src/main.js');
  const child = spawn(process.execPath, [main, '--config', file], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, WARDEN_LOG_LEVEL: 'warn' },
  });
  await waitForPort(port, child, 'agent');
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
