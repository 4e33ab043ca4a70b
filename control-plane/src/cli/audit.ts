/**
 * `warden audit verify | export | prune`: the chain and its signed
 * checkpoints (in PostgreSQL, or offline in exported segments), sealed
 * segments for WORM storage, and retention.
 */
import { createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { AuditChain, type VerifyResult } from '../audit/hash-chain.js';
import { SegmentExporter, verifySegments } from '../audit/segments.js';
import { AuditRetention, DEFAULT_RETENTION, parseRetention } from '../audit/retention.js';
import { UsageError, withDatabase } from './database.js';

export const auditOptions = {
  'public-key': { type: 'string' },
  'from-checkpoint': { type: 'string' },
  segments: { type: 'string' },
  out: { type: 'string' },
  'segment-size': { type: 'string' },
  retention: { type: 'string' },
} as const;

export const AUDIT_HELP = `  audit verify         verify the audit hash chain and its signed checkpoints
      --public-key FILE   the control plane's checkpoint public key (PEM)
      --from-checkpoint N start at a signed checkpoint instead of the first record
      --segments DIR      verify exported segments offline instead of the database
  audit export         write every range sealed by a signed checkpoint as a segment (JSONL) + its checkpoint (JSON)
      --out DIR           where to write (e.g. a WORM bucket's staging folder); already exported ranges are skipped
      --segment-size N    records per segment at most, whole checkpoint ranges (default 100000)
  audit prune          delete exported records older than the retention; the chain still verifies
      --retention T       6y (default and minimum), 7y, 2557d ...`;

type Values = { [K in keyof typeof auditOptions]?: string } & { 'database-url'?: string; schema?: string };

function report(r: VerifyResult & { segments?: number }, format: string, out: Writable): number {
  if (format === 'json') out.write(JSON.stringify(r, null, 2) + '\n');
  else if (r.ok) out.write(`audit log verified: ${r.checked} records${r.segments !== undefined ? ` in ${r.segments} segments` : ''}, ${r.checkpointsVerified} signed checkpoints\n`);
  else out.write(`audit log FAILED verification at record ${r.problem!.seq}: ${r.problem!.kind} — ${r.problem!.detail}\n`);
  return r.ok ? 0 : 1;
}

/** Exit codes: 0 ok, 1 verification failed, 2 usage. */
export async function auditCommand(sub: string | undefined, v: Values, format: string, out: Writable, progress: (s: string) => void): Promise<number> {
  switch (sub) {
    case 'verify': {
      if (!v['public-key']) throw new UsageError('warden audit verify: --public-key is required');
      const publicKey = createPublicKey(fs.readFileSync(v['public-key'], 'utf8'));
      if (v.segments) {
        if (!fs.existsSync(v.segments)) throw new UsageError(`warden audit verify: no directory ${v.segments}`);
        return report(verifySegments(v.segments, publicKey), format, out);
      }
      const from = v['from-checkpoint'] !== undefined ? Number(v['from-checkpoint']) : undefined;
      const r = await withDatabase(v, 'warden audit verify', (pool, schema) => new AuditChain(pool, schema).verify(publicKey, from !== undefined ? { fromCheckpoint: from } : {}));
      return report(r, format, out);
    }
    case 'export': {
      if (!v.out) throw new UsageError('warden audit export: --out DIR is required');
      const size = Number(v['segment-size'] ?? 100_000);
      if (!Number.isInteger(size) || size < 1) throw new UsageError('warden audit export: --segment-size must be a positive integer');
      const segments = await withDatabase(v, 'warden audit export', (pool, schema) => new SegmentExporter(pool, schema).export(v.out!, size, progress));
      if (format === 'json') out.write(JSON.stringify({ segments }, null, 2) + '\n');
      else out.write(segments.length === 0 ? 'nothing new to export: every signed range is already exported\n' : segments.map((s) => `${s.file} (records ${s.firstSeq}..${s.lastSeq})\n${s.checkpointFile}\n`).join(''));
      return 0;
    }
    case 'prune': {
      let ms: number;
      try {
        ms = parseRetention(v.retention ?? DEFAULT_RETENTION);
      } catch (err) {
        throw new UsageError(`warden audit prune: ${(err as Error).message}`);
      }
      const r = await withDatabase(v, 'warden audit prune', (pool, schema) => new AuditRetention(pool, schema).prune(ms));
      if (format === 'json') out.write(JSON.stringify(r, null, 2) + '\n');
      else out.write(r.pruned > 0 ? `pruned ${r.pruned} records; the chain now starts after signed checkpoint ${r.anchor!.checkpointId} (record ${r.anchor!.seq})\n` : `nothing pruned: ${r.reason}\n`);
      return 0;
    }
    default:
      throw new UsageError(`warden audit: unknown subcommand "${sub ?? ''}" (verify, export, prune)`);
  }
}
