/**
 * `warden agents enroll-token` as an operator runs it: the real CLI process
 * against the real PostgreSQL; the token it prints (or writes, 0600) is one
 * the control plane's registry accepts with the labels asked for, once or
 * repeatedly, and only its hash is stored.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentRegistry } from '../../control-plane/src/distribution/agent-registry.js';
import { services } from '../support/services.js';

const run = promisify(execFile);
const schema = `enroll_cli_${process.pid}`;
const url = `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`;
const pool = new pg.Pool({ ...services.postgres, max: 2 });
const registry = new AgentRegistry(pool, schema);
let dir: string;

async function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  await registry.migrate();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-enroll-cli-'));
});

afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('warden agents enroll-token', () => {
  it('prints a one-time token the registry accepts once, with its labels; only the hash is stored', async () => {
    const r = await warden(['agents', 'enroll-token', '--database-url', url, '--schema', schema, '--label', 'site=east', '--label', 'tier=db']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const token = r.stdout.trim();
    expect(token).toMatch(/^wde_[A-Za-z0-9_-]{32}$/);
    expect(await registry.consume(token)).toEqual({ site: 'east', tier: 'db' });
    await expect(registry.consume(token)).rejects.toThrow(/used/);
    const stored = await pool.query(`SELECT * FROM "${schema}".enrollment_tokens`);
    expect(JSON.stringify(stored.rows)).not.toContain(token);
  }, 60_000);

  it('writes a reusable token to a 0600 file, valid for the TTL asked; --json describes it', async () => {
    const file = path.join(dir, 'token');
    const r = await warden(['agents', 'enroll-token', '--database-url', url, '--schema', schema, '--reusable', '--ttl', '2h', '--output', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/written to .*token \(reusable, expires /);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const token = fs.readFileSync(file, 'utf8').trim();
    await registry.consume(token);
    await registry.consume(token);
    const ttl = (await pool.query(`SELECT extract(epoch FROM expires_at - created_at)::int AS s FROM "${schema}".enrollment_tokens WHERE reusable`)).rows[0].s as number;
    expect(ttl).toBeGreaterThanOrEqual(7190);
    expect(ttl).toBeLessThanOrEqual(7200);

    const j = await warden(['agents', 'enroll-token', '--json', '--database-url', url, '--schema', schema, '--ttl', '30m']);
    expect(JSON.parse(j.stdout)).toMatchObject({ token: expect.stringMatching(/^wde_/), reusable: false, labels: {} });
  }, 60_000);

  it('exits 2 on usage errors and 1 when the control plane has not set up the database', async () => {
    expect(await warden(['agents', 'enroll-token', '--schema', schema])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--database-url/) });
    expect(await warden(['agents', 'enroll-token', '--database-url', url, '--ttl', 'soon'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--ttl/) });
    expect(await warden(['agents', 'enroll-token', '--database-url', url, '--label', 'nokey'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/key=value/) });
    const missing = await warden(['agents', 'enroll-token', '--database-url', url, '--schema', `${schema}_absent`]);
    expect(missing).toMatchObject({ code: 1, stdout: '' });
    expect(missing.stderr).toMatch(/start the control plane against this database first/);
  }, 60_000);
});
