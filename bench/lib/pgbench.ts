/** Runs pgbench and reads TPS and latency from its summary. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PgbenchTarget {
  label: string;
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
}

export interface PgbenchResult {
  label: string;
  mode: 'simple' | 'prepared';
  tps: number;
  latencyMs: number;
  transactions: number;
}

export async function pgbench(
  target: PgbenchTarget,
  mode: 'simple' | 'prepared',
  opts: { clients: number; threads: number; seconds: number },
): Promise<PgbenchResult> {
  const args = [
    '-S', '-n', '-M', mode,
    '-c', String(opts.clients), '-j', String(opts.threads), '-T', String(opts.seconds),
    '-h', target.host, '-p', String(target.port), '-U', target.user, target.database,
  ];
  const env = { ...process.env, ...(target.password ? { PGPASSWORD: target.password } : {}) };
  const { stdout } = await run('pgbench', args, { env, maxBuffer: 16 << 20 });
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(stdout);
  const tx = /number of transactions actually processed: (\d+)/.exec(stdout);
  if (!tps || !latency || !tx) throw new Error(`cannot read pgbench output for ${target.label}:\n${stdout}`);
  return { label: target.label, mode, tps: Number(tps[1]), latencyMs: Number(latency[1]), transactions: Number(tx[1]) };
}

/** Creates the pgbench database and tables once (scale given), reusing them when present. */
export async function ensurePgbenchData(host: string, port: number, user: string, database: string, scale: number): Promise<void> {
  const env = { ...process.env };
  const psql = (db: string, sql: string) => run('psql', ['-h', host, '-p', String(port), '-U', user, '-d', db, '-Atqc', sql], { env });
  const exists = (await psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${database}'`)).stdout.trim() === '1';
  if (!exists) await psql('postgres', `CREATE DATABASE ${database}`);
  const rows = await psql(database, "SELECT count(*) FROM pg_tables WHERE tablename = 'pgbench_accounts'");
  if (rows.stdout.trim() === '1') {
    const n = Number((await psql(database, 'SELECT count(*) FROM pgbench_branches')).stdout.trim());
    if (n === scale) return;
  }
  await run('pgbench', ['-i', '-q', '-s', String(scale), '-h', host, '-p', String(port), '-U', user, database], { env });
}
