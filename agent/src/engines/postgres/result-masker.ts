/**
 * Masks result rows on the wire. A RowDescription is rewritten so masked
 * columns are described as `text` (OID 25): the binary form of text is its
 * UTF-8 bytes, so a masked value is valid whatever format the client asked
 * for. Each DataRow is rebuilt in one allocation; rows of results with
 * nothing to mask never reach this code (the relay only inspects DataRows
 * while a mask plan is active).
 */
import { binaryToTextBuffer, MASKED_COLUMN_TYPE_OID, DEFAULT_REDACTION, type Masker } from '../../masking/index.js';
import type { ConstantMasker } from '../../policy/maskers.js';

export interface RowField {
  name: string;
  tableOid: number;
  attnum: number;
  typeOid: number;
  format: number;
}

/** Reads a RowDescription frame (type byte included). */
export function parseRowDescription(frame: Buffer): RowField[] {
  const count = frame.readInt16BE(5);
  const fields: RowField[] = [];
  let pos = 7;
  for (let i = 0; i < count; i++) {
    const end = frame.indexOf(0, pos);
    if (end < 0) throw new Error('malformed RowDescription');
    const name = frame.toString('utf8', pos, end);
    pos = end + 1;
    fields.push({
      name,
      tableOid: frame.readUInt32BE(pos),
      attnum: frame.readInt16BE(pos + 4),
      typeOid: frame.readUInt32BE(pos + 6),
      format: frame.readInt16BE(pos + 16),
    });
    pos += 18;
  }
  return fields;
}

/** Copy of a RowDescription with the given columns re-described as text. */
export function rewriteRowDescription(frame: Buffer, masked: ReadonlySet<number>): Buffer {
  const out = Buffer.from(frame);
  const count = out.readInt16BE(5);
  let pos = 7;
  for (let i = 0; i < count; i++) {
    pos = out.indexOf(0, pos) + 1;
    if (masked.has(i)) {
      out.writeUInt32BE(MASKED_COLUMN_TYPE_OID, pos + 6);
      out.writeInt16BE(-1, pos + 10); // typlen: varlena
      out.writeInt32BE(-1, pos + 12); // typmod: none
    }
    pos += 18;
  }
  return out;
}

const REDACTED = Buffer.from(DEFAULT_REDACTION);
const SLAB_BYTES = 256 * 1024;

/**
 * Below this many bytes a plain loop copies faster than Buffer#copy, which
 * for a range makes a new Uint8Array over the source's ArrayBuffer (a call
 * into C++ for `.buffer`) on every call; a masked row makes three copies.
 */
const LOOP_COPY_MAX = 64;

/** Copies src[from, to) into dst at `at`; returns the position after it. */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): number {
  const n = to - from;
  if (n > LOOP_COPY_MAX) return at + src.copy(dst, at, from, to);
  for (let k = 0; k < n; k++) dst[at + k] = src[from + k]!;
  return at + n;
}

/** Big-endian int32 at `at` (the slab region was sized for it); returns the position after it. */
function writeInt32(dst: Buffer, at: number, v: number): number {
  dst[at] = v >>> 24;
  dst[at + 1] = v >>> 16;
  dst[at + 2] = v >>> 8;
  dst[at + 3] = v;
  return at + 4;
}

export interface ColumnMask {
  masker: Masker;
  /** Original type, needed to read a binary-format value before masking. */
  typeOid: number;
  /** 1 when the client receives this column in binary format. */
  format: number;
}

/** Rewrites DataRows for one result: columns by index → how to mask them. */
export class RowMasker {
  /** Values masked so far (for the audit record). */
  maskedValues = 0;
  private readonly byIndex: Array<ColumnMask | undefined>;

  /** Indexes of the masked columns. */
  readonly columns: number[];

  constructor(masks: ReadonlyMap<number, ColumnMask>) {
    this.columns = [...masks.keys()].sort((a, b) => a - b);
    const max = Math.max(-1, ...masks.keys());
    this.byIndex = Array.from({ length: max + 1 }, (_, i) => masks.get(i));
  }

  /**
   * Rewritten rows are carved one after another out of a slab, so the rows of
   * one input chunk are usually contiguous and go out in a single write
   * without being copied again (see Relay.drain). A slab region is never
   * reused: a socket may still hold it until the kernel has taken the bytes.
   */
  private slab = Buffer.allocUnsafeSlow(0);
  private slabPos = 0;
  /** The memory of the last row returned (the slab's ArrayBuffer), for callers that compare rows' memory. */
  memory: ArrayBufferLike = this.slab.buffer;

  private take(size: number): Buffer {
    if (this.slabPos + size > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, size));
      this.memory = this.slab.buffer;
      this.slabPos = 0;
    }
    const out = this.slab.subarray(this.slabPos, this.slabPos + size);
    this.slabPos += size;
    return out;
  }

  /** Masked values of the row being rewritten, by column (reused across rows). */
  private readonly scratch: Array<Buffer | null> = [];

  /**
   * Returns a new DataRow frame with masked values. Unmasked columns are
   * copied as byte ranges, never wrapped in Buffer objects: on a large
   * result this loop runs once per row and allocation is what costs.
   */
  rewrite(frame: Buffer): Buffer {
    const count = frame.readInt16BE(5);
    const byIndex = this.byIndex;
    const scratch = this.scratch;
    let pos = 7;
    let size = frame.length;
    for (let i = 0; i < count; i++) {
      const len = frame.readInt32BE(pos);
      const start = pos + 4;
      const end = len < 0 ? start : start + len;
      if (end > frame.length) throw new Error('malformed DataRow');
      const mask = i < byIndex.length ? byIndex[i] : undefined;
      if (mask !== undefined && len >= 0) {
        let masked = (mask.masker as ConstantMasker).constant;
        if (masked === undefined) {
          let value = frame.subarray(start, end);
          if (mask.format === 1) value = binaryToTextBuffer(mask.typeOid, value) ?? REDACTED;
          masked = mask.masker(value);
        }
        scratch[i] = masked;
        size += (masked === null ? 0 : masked.length) - len;
        this.maskedValues++;
      }
      pos = end;
    }
    const out = this.take(size);
    // Unmasked columns between masked ones are one contiguous run: one copy per run, not per column.
    // The first run starts with the frame's header, whose length is corrected once the run is copied.
    let w = 0;
    let r = 7;
    let runStart = 0;
    for (let i = 0; i < count; i++) {
      const len = frame.readInt32BE(r);
      const next = len < 0 ? r + 4 : r + 4 + len;
      const mask = i < byIndex.length ? byIndex[i] : undefined;
      if (mask !== undefined && len >= 0) {
        if (r > runStart) w = copyBytes(frame, runStart, r, out, w);
        const masked = scratch[i]!;
        if (masked === null) {
          w = writeInt32(out, w, -1);
        } else {
          w = copyBytes(masked, 0, masked.length, out, writeInt32(out, w, masked.length));
        }
        scratch[i] = null;
        runStart = next;
      }
      r = next;
    }
    if (r > runStart) copyBytes(frame, runStart, r, out, w);
    writeInt32(out, 1, size - 1);
    return out;
  }
}
