/**
 * `warden agents enroll-token`: creates an enrollment token in the control
 * plane's database, for a new agent's `--enroll-token` (a Kubernetes Secret,
 * a systemd EnvironmentFile, the compose example's one-shot service). Only
 * the token's hash is stored; the token is printed once, or written to a
 * file readable by its owner alone.
 */
import fs from 'node:fs';
import pg from 'pg';
import { AgentRegistry } from '../distribution/agent-registry.js';

export interface EnrollTokenOptions {
  databaseUrl?: string;
  schema: string;
  /** e.g. 30m, 24h, 7d; default 24h. */
  ttl?: string;
  reusable: boolean;
  labels: string[];
  output?: string;
  json: boolean;
}

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `24h`, `7d` → milliseconds; undefined when unreadable. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)([smhd])$/.exec(text.trim());
  return m ? Number(m[1]) * UNITS[m[2]!]! : undefined;
}

export async function enrollTokenCommand(opts: EnrollTokenOptions, io: Io): Promise<number> {
  const usage = (message: string): number => {
    io.stderr.write(`warden agents enroll-token: ${message}\n(see warden --help)\n`);
    return 2;
  };
  if (!opts.databaseUrl) return usage('--database-url (or WARDEN_DATABASE_URL) is required');
  const ttlMs = parseDuration(opts.ttl ?? '24h');
  if (!ttlMs) return usage(`--ttl: expected a duration such as 30m, 24h or 7d, got "${opts.ttl}"`);
  const labels: Record<string, string> = {};
  for (const l of opts.labels) {
    const i = l.indexOf('=');
    if (i <= 0) return usage(`--label: expected key=value, got "${l}"`);
    labels[l.slice(0, i)] = l.slice(i + 1);
  }
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 1 });
  let token: string;
  try {
    token = await new AgentRegistry(pool, opts.schema).createToken({ ttlMs, reusable: opts.reusable, labels });
  } catch (err) {
    const e = err as { code?: string; message: string };
    io.stderr.write(
      e.code === '42P01'
        ? `warden agents enroll-token: schema "${opts.schema}" has no enrollment tables: start the control plane against this database first\n`
        : `warden agents enroll-token: ${e.message}\n`,
    );
    return 1;
  } finally {
    await pool.end();
  }
  const expiresAt = new Date(Date.now() + ttlMs).toISOString();
  if (opts.output) {
    fs.writeFileSync(opts.output, token + '\n', { mode: 0o600 });
    io.stderr.write(`enrollment token written to ${opts.output} (${opts.reusable ? 'reusable' : 'one-time'}, expires ${expiresAt})\n`);
  } else if (opts.json) {
    io.stdout.write(JSON.stringify({ token, reusable: opts.reusable, labels, expiresAt }, null, 2) + '\n');
  } else {
    io.stdout.write(token + '\n');
  }
  return 0;
}
