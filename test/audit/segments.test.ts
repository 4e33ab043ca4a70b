/**
 * Sealed segments and retention, through the `warden` CLI run as people run
 * it, over a real chain in PostgreSQL: export writes each signed range once,
 * offline verification catches a changed byte, a missing segment and a
 * foreign key, and pruning deletes only exported records older than the
 * retention (never under six years) while the chain still verifies.
 */
import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditChain } from '../../control-plane/src/audit/hash-chain.js';
import { Checkpointer } from '../../control-plane/src/audit/checkpointer.js';
import { parseRetention } from '../../control-plane/src/audit/retention.js';
import { services } from '../support/services.js';

const run = promisify(execFile);
const pool = new pg.Pool({ ...services.postgres, max: 2 });
const schema = `segments_test_${process.pid}`;
const url = `postgres://${services.postgres.user}@${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`;
const { privateKey } = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-segments-'));
const keyFile = path.join(dir, 'audit.pub');
const otherKeyFile = path.join(dir, 'other.pub');
const out = path.join(dir, 'worm');
const chain = new AuditChain(pool, schema);

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args, '--database-url', url, '--schema', schema]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

const events = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ sessionId: `s${(from + i) % 5}`, sessionSeq: from + i, event: { statement: { text: `select ${from + i}`, rowCount: String(from + i) } } }));

/** A copy of the exported directory to damage. */
function copyOut(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-segments-copy-'));
  for (const f of fs.readdirSync(out)) fs.writeFileSync(path.join(d, f), fs.readFileSync(path.join(out, f)));
  return d;
}

beforeAll(async () => {
  fs.writeFileSync(keyFile, createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(otherKeyFile, other.publicKey.export({ type: 'spki', format: 'pem' }));
  await chain.migrate();
  await chain.append(events(1, 20));
  await chain.checkpoint(privateKey);
  await chain.append(events(21, 35));
  await chain.checkpoint(privateKey);
  await chain.append(events(36, 50)); // not sealed yet
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('warden audit export', () => {
  it('writes one segment per signed range (whole ranges up to --segment-size), each once; unsealed records wait', async () => {
    const r = await warden(['audit', 'export', '--out', out, '--segment-size', '10']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/sealed records 1\.\.20 \(checkpoint \d+\)\nsealed records 21\.\.35/);
    expect(fs.readdirSync(out).sort()).toEqual([
      'segment-000000000001-000000000020.checkpoint.json',
      'segment-000000000001-000000000020.jsonl',
      'segment-000000000021-000000000035.checkpoint.json',
      'segment-000000000021-000000000035.jsonl',
    ]);
    const lines = fs.readFileSync(path.join(out, 'segment-000000000021-000000000035.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(15);
    expect(lines[0]).toMatchObject({ seq: 21, sessionId: 's1', sessionSeq: 21, payload: '{"statement":{"rowCount":"21","text":"select 21"}}' });
    const cp = JSON.parse(fs.readFileSync(path.join(out, 'segment-000000000021-000000000035.checkpoint.json'), 'utf8'));
    expect(cp).toMatchObject({ size: 35, firstSeq: 21, lastSeq: 35, headHash: lines[14].hash, segmentFile: 'segment-000000000021-000000000035.jsonl' });
    expect(cp.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect((await warden(['audit', 'export', '--out', out])).stdout).toMatch(/nothing new to export/);
  }, 60_000);

  it('seals the rest once the control plane signs the head (its checkpointer), and verifies all segments offline', async () => {
    const cpr = new Checkpointer({ chain, privateKey, intervalMs: 60_000, log: pino({ level: 'silent' }) });
    expect(await cpr.tick()).toBe(50);
    expect(await cpr.tick()).toBeUndefined(); // nothing new: no second checkpoint of the same head
    expect((await warden(['audit', 'export', '--out', out, '--segment-size', '100'])).stdout).toContain('segment-000000000036-000000000050.jsonl');
    const v = await warden(['audit', 'verify', '--segments', out, '--public-key', keyFile]);
    expect(v.code).toBe(0);
    expect(v.stdout).toBe('audit log verified: 50 records in 3 segments, 3 signed checkpoints\n');
  }, 60_000);

  it('offline verification names a changed record, a missing segment and a foreign key', async () => {
    const changed = copyOut();
    const seg = path.join(changed, 'segment-000000000021-000000000035.jsonl');
    fs.writeFileSync(seg, fs.readFileSync(seg, 'utf8').replace('select 25', 'select 26'));
    const a = await warden(['audit', 'verify', '--segments', changed, '--public-key', keyFile, '--json']);
    expect(a.code).toBe(1);
    expect(JSON.parse(a.stdout).problem).toMatchObject({ kind: 'modified', seq: 25 });

    const missing = copyOut();
    for (const f of fs.readdirSync(missing)) if (f.startsWith('segment-000000000021')) fs.rmSync(path.join(missing, f));
    const b = await warden(['audit', 'verify', '--segments', missing, '--public-key', keyFile]);
    expect(b.code).toBe(1);
    expect(b.stdout).toMatch(/FAILED verification at record 21: deleted — records 21\.\.35 are in no segment/);

    const c = await warden(['audit', 'verify', '--segments', out, '--public-key', otherKeyFile]);
    expect(c.code).toBe(1);
    expect(c.stdout).toMatch(/bad-checkpoint — checkpoint \d+ was signed by key [0-9a-f]{16}, not by/);
    expect((await warden(['audit', 'verify', '--segments', out])).code).toBe(2);
  }, 60_000);
});

describe('retention', () => {
  it('refuses anything under six years', async () => {
    expect(() => parseRetention('5y')).toThrow(/six-year minimum/);
    expect(() => parseRetention('2000d')).toThrow(/six-year minimum/);
    expect(parseRetention('7y')).toBeGreaterThan(parseRetention('6y'));
    const r = await warden(['audit', 'prune', '--retention', '5y']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/shorter than the six-year minimum/);
  }, 30_000);

  it('prunes only exported records older than the retention, and the chain still verifies from the signed anchor', async () => {
    const young = await warden(['audit', 'prune']);
    expect(young.stdout).toMatch(/^nothing pruned: the oldest unpruned segment holds records newer than/);
    // Age the first two segments past seven years, and also records 51..60 which are sealed but never exported.
    await chain.append(events(51, 60));
    await chain.checkpoint(privateKey);
    await pool.query(`UPDATE "${schema}".audit_log SET recorded_at = now() - interval '7 years 1 day' WHERE seq <= 35 OR seq > 50`);
    expect((await warden(['audit', 'prune', '--retention', '8y'])).stdout).toMatch(/^nothing pruned/);
    const r = await warden(['audit', 'prune', '--retention', '7y', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ pruned: 35, anchor: { seq: 35 } });
    const { rows } = await pool.query(`SELECT min(seq)::int AS first, max(seq)::int AS last FROM "${schema}".audit_log`);
    expect(rows[0]).toEqual({ first: 36, last: 60 }); // 36..50 are young, 51..60 were never exported
    const v = await warden(['audit', 'verify', '--public-key', keyFile]);
    expect(v.code).toBe(0);
    expect(v.stdout).toBe('audit log verified: 25 records, 3 signed checkpoints\n');
    // Offline, the exported segments still verify whole.
    expect((await warden(['audit', 'verify', '--segments', out, '--public-key', keyFile])).code).toBe(0);
  }, 60_000);

  it('an anchor that no signed checkpoint vouches for fails verification', async () => {
    await pool.query(`UPDATE "${schema}".audit_anchor SET seq = 30`);
    const v = await warden(['audit', 'verify', '--public-key', keyFile]);
    expect(v.code).toBe(1);
    expect(v.stdout).toMatch(/deleted — records 1\.\.30 are gone and their anchor matches no signed checkpoint/);
    await pool.query(`UPDATE "${schema}".audit_anchor SET seq = 35`);
  }, 30_000);
});
