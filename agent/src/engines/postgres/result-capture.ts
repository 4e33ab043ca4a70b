/**
 * What the audit record keeps of one result: a SHA-256 over every DataRow
 * exactly as it went to the client (masked rows included), computed as the
 * rows stream past, and the first rows decoded to text as a sample.
 *
 * Nothing is buffered: contiguous DataRow bytes of one input chunk (or one
 * masking slab) are hashed as one range, so a large result costs about one
 * hash update per socket read, not one per row. Chunks from the socket and
 * slab regions are never reused, so holding their memory (the ArrayBuffer
 * and the range in it) until the next update is safe. A result that arrived
 * as one range (most do: one socket read) is hashed in one call, without
 * creating a Hash object for it.
 */
import { createHash, hash as hashOnce, type Hash } from 'node:crypto';
import { binaryToTextBuffer, DEFAULT_REDACTION } from '../../masking/index.js';
import type { RecordedSample, ResultRecording } from '../../audit/events.js';

/** How the client receives a column: name, type as described to it, and format. */
export interface SentColumn {
  name: string;
  typeOid: number;
  format: number;
}

export interface CapturedResult {
  resultSha256?: string;
  sample?: RecordedSample;
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * A DataRow as the sample keeps it: each value as text (a binary one decoded by its column's type,
 * else hex), SQL NULL as null, and the `redacted` columns as [REDACTED]. Without columns (an Execute
 * never described) values are read as text.
 */
export function decodeSampleRow(frame: Buffer, columns: readonly SentColumn[] | undefined, redacted: readonly number[]): Array<string | null> {
  const count = frame.readInt16BE(5);
  const out: Array<string | null> = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const len = frame.readInt32BE(pos);
    pos += 4;
    if (len < 0) {
      out.push(null);
      continue;
    }
    if (redacted.includes(i)) {
      pos += len;
      out.push(DEFAULT_REDACTION);
      continue;
    }
    const col = columns?.[i];
    if ((col?.format ?? 0) === 0) out.push(frame.toString('utf8', pos, pos + len));
    else {
      const value = frame.subarray(pos, pos + len);
      out.push((col ? binaryToTextBuffer(col.typeOid, value) : undefined)?.toString('utf8') ?? '\\x' + value.toString('hex'));
    }
    pos += len;
  }
  return out;
}

export class ResultCapture {
  private hash: Hash | null = null;
  /** The memory of the range not hashed yet: [pendingStart, pendingEnd) of it. */
  private pending: ArrayBufferLike | null = null;
  private pendingEnd = 0;
  private columns: SentColumn[] | undefined;
  private masked: number[] = [];
  /** Columns the sample keeps as [REDACTED] although the client got them (see StatementPlan.sampleRedact). */
  private redacted: readonly number[] = [];
  private rows: Array<Array<string | null>> = [];
  private sent = 0;
  /** Set once the current statement produced a result set (a description or a row). */
  private open = false;

  constructor(readonly settings: ResultRecording) {}

  /** True while rows must arrive whole (to be sampled). */
  get wantsRows(): boolean {
    return this.rows.length < this.settings.sampleRows;
  }

  /** A result begins: how the client sees its columns (unknown for an Execute never described). */
  begin(columns: SentColumn[] | undefined, masked: Iterable<number>, redacted: readonly number[] = []): void {
    this.open = true;
    this.columns = columns;
    this.redacted = redacted;
    const sent = [...masked];
    // Usually nothing is masked or redacted: no set to build.
    this.masked = (redacted.length === 0 ? sent : [...new Set([...sent, ...redacted])]).sort((a, b) => a - b);
  }

  /**
   * Bytes of DataRows as sent, in order (whole rows or pieces of streamed ones): buf[start, end).
   * `memory` is buf.buffer when the caller already knows it: reading `.buffer` is a call into C++,
   * which a masked result would otherwise make for every row.
   */
  bytes(buf: Buffer, start: number, end: number, memory?: ArrayBufferLike): void {
    if (!this.settings.hash) return;
    this.open = true;
    const from = buf.byteOffset + start;
    if (this.pending !== null && from === this.pendingEnd) {
      memory ??= buf.buffer;
      if (memory === this.pending) {
        this.pendingEnd += end - start;
        return;
      }
    }
    this.flushPending();
    this.pending = memory ?? buf.buffer;
    this.pendingStart = from;
    this.pendingEnd = from + (end - start);
  }

  private pendingStart = 0;

  private flushPending(): void {
    const p = this.pending;
    if (p === null) return;
    this.hash ??= createHash('sha256');
    this.hash.update(new Uint8Array(p, this.pendingStart, this.pendingEnd - this.pendingStart));
    this.pending = null;
  }

  /** A whole DataRow as sent (`memory`: its buffer, if known): hashed, and sampled while the sample has room. */
  row(frame: Buffer, memory?: ArrayBufferLike): void {
    this.bytes(frame, 0, frame.length, memory);
    this.open = true;
    this.sent++;
    if (this.rows.length < this.settings.sampleRows) this.rows.push(decodeSampleRow(frame, this.columns, this.redacted));
  }

  /** A DataRow that streamed through without being looked at (past the sample). */
  streamedRow(): void {
    this.sent++;
  }

  private digest(): string {
    const p = this.pending;
    if (this.hash === null) return p === null ? EMPTY_SHA256 : hashOnce('sha256', new Uint8Array(p, this.pendingStart, this.pendingEnd - this.pendingStart), 'hex');
    this.flushPending();
    return this.hash.digest('hex');
  }

  /** The statement is over: what to record, and a clean slate for the next one. */
  finish(): CapturedResult {
    const out: CapturedResult = {};
    if (this.open) {
      if (this.settings.hash) out.resultSha256 = this.digest();
      if (this.settings.sampleRows > 0) {
        out.sample = { columns: this.columns?.map((c) => c.name) ?? [], maskedColumns: this.masked, rows: this.rows, truncated: this.sent > this.rows.length };
      }
    }
    this.hash = null;
    this.pending = null;
    this.columns = undefined;
    this.masked = [];
    this.redacted = [];
    this.rows = [];
    this.sent = 0;
    this.open = false;
    return out;
  }
}
