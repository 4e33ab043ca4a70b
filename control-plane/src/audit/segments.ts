/**
 * Sealed segments for immutable (WORM) storage: the chain cut at signed
 * checkpoints, each piece written as JSON Lines (every record with its
 * position, payload and hashes) beside its checkpoint (size, head hash,
 * Ed25519 signature, key id). A segment proves itself offline: recomputing
 * its records' hashes must end at the signed head, so no record in it can
 * change without the signature failing. Export recomputes the chain as it
 * writes and refuses to seal a broken one; each export is recorded, and only
 * exported records may ever be pruned (retention.ts).
 */
import { createHash, verify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { SchemaTables } from '../db/schema-tables.js';
import { AuditChain, GENESIS, checkpointBytes, keyIdOf, recordHash, type Checkpoint, type VerifyResult } from './hash-chain.js';

export interface SegmentLine {
  seq: number;
  sessionId: string;
  sessionSeq: number;
  recordedAt: string;
  /** The canonical JSON the hash covers, verbatim. */
  payload: string;
  prevHash: string;
  hash: string;
}

export interface SegmentCheckpoint {
  checkpointId: number;
  /** Log size the checkpoint signs, i.e. the segment's last record. */
  size: number;
  headHash: string;
  signedAt: string;
  keyId: string;
  /** Ed25519 over checkpointBytes(size, headHash), base64. */
  signature: string;
  firstSeq: number;
  lastSeq: number;
  segmentFile: string;
  segmentSha256: string;
}

export interface ExportedSegment {
  firstSeq: number;
  lastSeq: number;
  file: string;
  checkpointFile: string;
}

const name = (first: number, last: number): string => `segment-${String(first).padStart(12, '0')}-${String(last).padStart(12, '0')}`;

/** Checkpoint sizes at which segments end: as many whole checkpoint ranges as fit in `segmentSize` records, at least one. */
export function segmentBounds(after: number, checkpoints: Checkpoint[], segmentSize: number): Array<{ first: number; last: Checkpoint }> {
  const ahead = [...new Map(checkpoints.filter((c) => c.size > after).sort((a, b) => a.size - b.size || a.id - b.id).map((c) => [c.size, c])).values()];
  const out: Array<{ first: number; last: Checkpoint }> = [];
  let first = after + 1;
  while (ahead.length > 0) {
    let i = 0;
    while (i + 1 < ahead.length && ahead[i + 1]!.size - first + 1 <= segmentSize) i++;
    const last = ahead.splice(0, i + 1).at(-1)!;
    out.push({ first, last });
    first = last.size + 1;
  }
  return out;
}

export class SegmentExporter extends SchemaTables {
  private readonly chain: AuditChain;

  constructor(pool: pg.Pool, schema: string) {
    super(pool, schema);
    this.chain = new AuditChain(pool, schema);
  }

  /** Records exported so far: the next segment starts after this. */
  async exportedUpTo(): Promise<number> {
    const { rows } = await this.pool.query(`SELECT coalesce(max(last_seq), 0) AS n FROM ${this.t('audit_segments')}`);
    return Number(rows[0].n);
  }

  /** Writes every not yet exported range that a signed checkpoint seals. Idempotent: a second run writes nothing new. */
  async export(outDir: string, segmentSize: number, progress: (s: string) => void = () => undefined): Promise<ExportedSegment[]> {
    fs.mkdirSync(outDir, { recursive: true });
    const anchor = await this.chain.anchor();
    const after = Math.max(await this.exportedUpTo(), anchor?.seq ?? 0);
    const done: ExportedSegment[] = [];
    for (const { first, last } of segmentBounds(after, await this.chain.checkpoints(), segmentSize)) {
      done.push(await this.writeSegment(outDir, first, last));
      progress(`sealed records ${first}..${last.size} (checkpoint ${last.id})`);
    }
    return done;
  }

  private async writeSegment(outDir: string, first: number, cp: Checkpoint): Promise<ExportedSegment> {
    const base = name(first, cp.size);
    const file = path.join(outDir, `${base}.jsonl`);
    const tmp = `${file}.partial`;
    const fd = fs.openSync(tmp, 'w', 0o444);
    const fileHash = createHash('sha256');
    let prev: Buffer | undefined;
    let expected = first;
    try {
      for (let from = first; from <= cp.size; ) {
        const { rows } = await this.pool.query(
          `SELECT seq, session_id, session_seq, recorded_at, payload, prev_hash, hash FROM ${this.t('audit_log')} WHERE seq BETWEEN $1 AND $2 ORDER BY seq LIMIT 5000`,
          [from, cp.size],
        );
        if (rows.length === 0) break;
        const lines: string[] = [];
        for (const r of rows as Array<{ seq: string; session_id: string; session_seq: string; recorded_at: Date; payload: string; prev_hash: Buffer; hash: Buffer }>) {
          const seq = Number(r.seq);
          prev ??= r.prev_hash;
          // Never seal what does not verify: the segment must prove itself against the signed head.
          if (seq !== expected || !recordHash(prev, seq, r.payload).equals(r.hash) || !r.prev_hash.equals(prev)) {
            throw new Error(`record ${expected} does not verify; run "warden audit verify" — nothing exported from ${first}`);
          }
          const line: SegmentLine = { seq, sessionId: r.session_id, sessionSeq: Number(r.session_seq), recordedAt: r.recorded_at.toISOString(), payload: r.payload, prevHash: r.prev_hash.toString('hex'), hash: r.hash.toString('hex') };
          lines.push(JSON.stringify(line) + '\n');
          prev = r.hash;
          expected++;
        }
        const chunk = lines.join('');
        fileHash.update(chunk);
        fs.writeSync(fd, chunk);
        from = expected;
      }
      if (expected !== cp.size + 1 || !prev?.equals(cp.headHash)) throw new Error(`records ${first}..${cp.size} do not end at checkpoint ${cp.id}'s head; nothing exported`);
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
    const segmentSha256 = fileHash.digest('hex');
    const checkpoint: SegmentCheckpoint = {
      checkpointId: cp.id,
      size: cp.size,
      headHash: cp.headHash.toString('hex'),
      signedAt: cp.signedAt.toISOString(),
      keyId: cp.keyId,
      signature: cp.signature.toString('base64'),
      firstSeq: first,
      lastSeq: cp.size,
      segmentFile: path.basename(file),
      segmentSha256,
    };
    const checkpointFile = path.join(outDir, `${base}.checkpoint.json`);
    fs.rmSync(checkpointFile, { force: true }); // left by an export interrupted before it was recorded
    fs.writeFileSync(checkpointFile, JSON.stringify(checkpoint, null, 2) + '\n', { mode: 0o444 });
    await this.pool.query(`INSERT INTO ${this.t('audit_segments')} (first_seq, last_seq, checkpoint_id, file, file_sha256) VALUES ($1, $2, $3, $4, $5)`, [first, cp.size, cp.id, path.basename(file), Buffer.from(segmentSha256, 'hex')]);
    return { firstSeq: first, lastSeq: cp.size, file, checkpointFile };
  }
}

export interface SegmentsVerifyResult extends VerifyResult {
  segments: number;
}

/**
 * Verifies exported segments offline: each checkpoint's signature (and key id), each segment's
 * file hash, every record's hash up to the signed head, and that segments follow one another
 * without gaps. Names the first record that is wrong.
 */
export function verifySegments(dir: string, publicKey: KeyObject): SegmentsVerifyResult {
  const keyId = keyIdOf(publicKey);
  const cps = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.checkpoint.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as SegmentCheckpoint)
    .sort((a, b) => a.firstSeq - b.firstSeq);
  let checked = 0;
  let verifiedCps = 0;
  const fail = (kind: NonNullable<VerifyResult['problem']>['kind'], seq: number, detail: string): SegmentsVerifyResult => ({ ok: false, checked, checkpointsVerified: verifiedCps, segments: cps.length, problem: { kind, seq, detail } });
  if (cps.length === 0) return fail('deleted', 1, `no sealed segments (*.checkpoint.json) in ${dir}`);
  let prevHead: Buffer | undefined;
  let prevLast: number | undefined;
  for (const cp of cps) {
    if (cp.keyId !== keyId) return fail('bad-checkpoint', cp.size, `checkpoint ${cp.checkpointId} was signed by key ${cp.keyId}, not by ${keyId}`);
    if (!verify(null, checkpointBytes(cp.size, Buffer.from(cp.headHash, 'hex')), publicKey, Buffer.from(cp.signature, 'base64'))) {
      return fail('bad-checkpoint', cp.size, `checkpoint ${cp.checkpointId} has an invalid signature`);
    }
    if (prevLast !== undefined && cp.firstSeq !== prevLast + 1) return fail('deleted', prevLast + 1, `records ${prevLast + 1}..${cp.firstSeq - 1} are in no segment`);
    const file = path.join(dir, cp.segmentFile);
    if (!fs.existsSync(file)) return fail('deleted', cp.firstSeq, `segment ${cp.segmentFile} is missing`);
    const bytes = fs.readFileSync(file);
    const lines = bytes.toString('utf8').split('\n').filter((l) => l.length > 0);
    let prev = prevHead ?? (cp.firstSeq === 1 ? GENESIS : undefined);
    let expected = cp.firstSeq;
    for (const l of lines) {
      let line: SegmentLine;
      try {
        line = JSON.parse(l) as SegmentLine;
      } catch {
        return fail('modified', expected, `segment ${cp.segmentFile}: line for record ${expected} is not JSON`);
      }
      if (line.seq !== expected) return fail(line.seq > expected ? 'deleted' : 'inserted', expected, `segment ${cp.segmentFile}: expected record ${expected}, found ${line.seq}`);
      // The first record of a directory that starts mid-chain is anchored by its own prev hash: the signed head still covers it.
      prev ??= Buffer.from(line.prevHash, 'hex');
      const h = recordHash(prev, line.seq, line.payload);
      if (!h.equals(Buffer.from(line.hash, 'hex')) || line.prevHash !== prev.toString('hex')) {
        return fail('modified', line.seq, `segment ${cp.segmentFile}: record ${line.seq} does not match its hash: its content was changed`);
      }
      prev = h;
      expected++;
      checked++;
    }
    if (expected !== cp.size + 1) return fail('truncated', expected, `segment ${cp.segmentFile} ends at ${expected - 1}; its checkpoint covers ${cp.size}`);
    if (!prev || prev.toString('hex') !== cp.headHash) return fail('modified', cp.size, `segment ${cp.segmentFile} does not end at its signed head`);
    if (createHash('sha256').update(bytes).digest('hex') !== cp.segmentSha256) return fail('modified', cp.firstSeq, `segment ${cp.segmentFile} differs from the file that was exported`);
    verifiedCps++;
    prevHead = prev;
    prevLast = cp.size;
  }
  return { ok: true, checked, checkpointsVerified: verifiedCps, segments: cps.length };
}
