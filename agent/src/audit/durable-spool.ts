/**
 * The agent's durable audit spool: every event is encoded once, as the
 * AuditEvent the control plane receives, appended to a local file and
 * fsync'd (in batches, so one fsync covers many events) before the agent
 * considers it recorded; events stay until the control plane has
 * acknowledged them (by session id + sequence), and are replayed after a
 * restart. If the spool cannot write, or grows past its limit because the
 * control plane has been away too long, `healthy` turns false and the data
 * path refuses new work: nothing runs unrecorded.
 *
 * File format (spool.bin), one frame per event:
 *   u32 length | u32 CRC-32 of the rest | f64 recorded-at (ms) | AuditEvent bytes
 * A crash can leave only the last frame torn (everything before it was
 * fsync'd whole); it is cut off at the next start. A bad frame anywhere else
 * means the file was damaged, and the agent refuses to start on it rather
 * than forget what it held.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { toBinary } from '@bufbuild/protobuf';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { AuditEventSchema, auditEventIdentity } from '../../../proto/src/index.js';
import type { SessionEvent, SessionRecorder } from './events.js';
import { toAuditEvent } from './to-proto.js';
import { encodeStatement } from './encode-statement.js';

export interface SpooledEvent {
  sessionId: string;
  seq: number;
  /** The encoded warden.v1.AuditEvent, exactly as it is sent. */
  bytes: Uint8Array;
}

export interface DurableSpoolOptions {
  dir: string;
  /** Refuse new work when unacknowledged events exceed this many bytes. Default 1 GiB. */
  limitBytes?: number;
  /** Longest an event waits before its batch is written and fsync'd. Default 10 ms. */
  flushMs?: number;
  /** Called with events once they are durable, to stream them on. */
  onDurable?: (events: SpooledEvent[]) => void;
  /** The policy bundle version in force, stamped on the session-start events it encodes. */
  bundleVersion?: () => string | undefined;
}

interface Held extends SpooledEvent {
  /** Frame size in the file. */
  size: number;
  /** When it was recorded (ms since the epoch). */
  at: number;
}

const HEADER = 16;

export class DurableSpool implements SessionRecorder {
  private readonly eventsFile: string;
  private readonly acksFile: string;
  private fd: number;
  private acksFd: number;
  private failure: Error | null = null;
  private batch: Array<{ seq: number; event: SessionEvent }> = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly seqs = new Map<string, number>();
  /**
   * Unacknowledged events per session in sequence order, so an acknowledgement drops a
   * session's prefix without walking everyone else's. Only the encoded bytes are kept.
   */
  private readonly unacked = new Map<string, Held[]>();
  private unackedCount = 0;
  private readonly acked = new Map<string, number>();
  private unackedBytes = 0;
  private waiters: Array<() => void> = [];
  private closed = false;
  /** Reused for every statement: its buffer grows once, not per event. */
  private readonly writer = new BinaryWriter();
  /** Where durable events go next (the control-plane link sets this while connected). */
  sink: ((events: SpooledEvent[]) => void) | undefined;

  constructor(private readonly opts: DurableSpoolOptions) {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.eventsFile = path.join(opts.dir, 'spool.bin');
    this.acksFile = path.join(opts.dir, 'acks.jsonl');
    this.readAcks();
    this.fd = fs.openSync(this.eventsFile, 'a', 0o600);
    this.acksFd = fs.openSync(this.acksFile, 'a', 0o600);
    this.replay();
    this.importJsonl();
  }

  private readAcks(): void {
    if (!fs.existsSync(this.acksFile)) return;
    for (const line of fs.readFileSync(this.acksFile, 'utf8').split('\n')) {
      if (!line) continue;
      const { sid, upTo } = JSON.parse(line) as { sid: string; upTo: number };
      this.acked.set(sid, Math.max(this.acked.get(sid) ?? 0, upTo));
    }
  }

  /** Rebuilds what is still unacknowledged from the frames a previous run left. */
  private replay(): void {
    // Only a regular file holds spooled events (a device such as /dev/full has nothing to replay).
    if (!fs.fstatSync(this.fd).isFile()) return;
    const file = fs.readFileSync(this.eventsFile);
    let off = 0;
    while (off < file.length) {
      const len = off + HEADER <= file.length ? file.readUInt32BE(off) : -1;
      const end = off + HEADER + len;
      const whole = len >= 0 && end <= file.length && file.readUInt32BE(off + 4) === crc32(file.subarray(off + 8, end));
      if (!whole) {
        if (len >= 0 && end < file.length) throw new Error(`audit spool ${this.eventsFile} is damaged at byte ${off}: refusing to start on it (move it aside to inspect)`);
        fs.ftruncateSync(this.fd, off); // the torn last frame of a crash mid-write
        break;
      }
      const bytes = file.subarray(off + HEADER, end);
      const { sessionId, sequence } = auditEventIdentity(bytes);
      this.seqs.set(sessionId, Math.max(this.seqs.get(sessionId) ?? 0, sequence));
      if (sequence > (this.acked.get(sessionId) ?? 0)) this.hold({ sessionId, seq: sequence, bytes, size: HEADER + len, at: file.readDoubleBE(off + 8) });
      off = end;
    }
  }

  /** Events an older agent spooled as JSON lines are re-encoded into frames, once, then that file goes. */
  private importJsonl(): void {
    const old = path.join(this.opts.dir, 'spool.jsonl');
    if (!fs.existsSync(old)) return;
    const text = fs.readFileSync(old, 'utf8');
    const lines = text.split('\n');
    if (!text.endsWith('\n')) lines.pop();
    const events: Array<{ seq: number; event: SessionEvent }> = [];
    for (const line of lines) {
      if (!line) continue;
      const { sessionId, seq, event } = JSON.parse(line) as { sessionId: string; seq: number; event: SessionEvent };
      this.seqs.set(sessionId, Math.max(this.seqs.get(sessionId) ?? 0, seq));
      if (seq > (this.acked.get(sessionId) ?? 0)) events.push({ seq, event });
    }
    const { buffer, held } = this.encode(events);
    fs.writeSync(this.fd, buffer);
    fs.fdatasyncSync(this.fd);
    held.forEach((h) => this.hold(h));
    fs.unlinkSync(old);
  }

  get healthy(): boolean {
    return this.failure === null && this.unackedBytes < (this.opts.limitBytes ?? 1 << 30);
  }

  get error(): Error | null {
    return this.failure;
  }

  private hold(e: Held): void {
    let q = this.unacked.get(e.sessionId);
    if (!q) this.unacked.set(e.sessionId, (q = []));
    q.push(e);
    this.unackedBytes += e.size;
    this.unackedCount++;
  }

  /** Events not yet acknowledged, each session's in order (replayed to the control plane on reconnect). */
  pending(): SpooledEvent[] {
    const out: SpooledEvent[] = [];
    for (const q of this.unacked.values()) for (const { sessionId, seq, bytes } of q) out.push({ sessionId, seq, bytes });
    return out;
  }

  /** How many events wait for an acknowledgement. */
  get pendingCount(): number {
    return this.unackedCount;
  }

  /** Events recorded but not acknowledged yet (written or still in the batch), and the oldest one's time. */
  backlog(): { events: number; oldestAt?: string } {
    let oldest = Infinity;
    for (const q of this.unacked.values()) if (q[0] && q[0].at < oldest) oldest = q[0].at;
    if (oldest === Infinity && this.batch[0]) oldest = Date.parse(this.batch[0].event.at);
    return { events: this.unackedCount + this.batch.length, ...(Number.isFinite(oldest) ? { oldestAt: new Date(oldest).toISOString() } : {}) };
  }

  /** Resolves once every event recorded so far is acknowledged, or after `timeoutMs` (false then). */
  async acknowledged(timeoutMs: number): Promise<boolean> {
    await this.flush().catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    while (this.unackedCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.unackedCount === 0;
  }

  record(event: SessionEvent): void {
    if (this.failure) return;
    const seq = (this.seqs.get(event.sessionId) ?? 0) + 1;
    this.seqs.set(event.sessionId, seq);
    this.batch.push({ seq, event });
    this.timer ??= setTimeout(() => this.write(), this.opts.flushMs ?? 10);
  }

  /**
   * Encodes a batch into one buffer of frames. Each held event keeps a view into that buffer,
   * so an unacknowledged backlog is a few large buffers rather than an object graph per event.
   */
  private encode(events: Array<{ seq: number; event: SessionEvent }>): { buffer: Buffer; held: Held[] } {
    const version = this.opts.bundleVersion?.() ?? '';
    const encoded = events.map(({ seq, event }) => {
      if (event.type !== 'statement') return toBinary(AuditEventSchema, toAuditEvent(event, seq, version));
      encodeStatement(this.writer, event, seq);
      return this.writer.finish();
    });
    const buffer = Buffer.allocUnsafe(encoded.reduce((n, b) => n + HEADER + b.length, 0));
    const held: Held[] = [];
    let off = 0;
    for (let i = 0; i < events.length; i++) {
      const { seq, event } = events[i]!;
      const bytes = encoded[i]!;
      const at = Date.parse(event.at);
      buffer.writeUInt32BE(bytes.length, off);
      buffer.writeDoubleBE(at, off + 8);
      buffer.set(bytes, off + HEADER);
      buffer.writeUInt32BE(crc32(buffer.subarray(off + 8, off + HEADER + bytes.length)), off + 4);
      held.push({ sessionId: event.sessionId, seq, bytes: buffer.subarray(off + HEADER, off + HEADER + bytes.length), size: HEADER + bytes.length, at });
      off += HEADER + bytes.length;
    }
    return { buffer, held };
  }

  /** True while a batch is being written and fsync'd; batches recorded meanwhile wait for the next write. */
  private writing = false;

  /**
   * Writes and fsyncs the waiting batch off the event loop (the thread pool does the I/O), so
   * statements in flight never stall behind a disk flush; one write at a time keeps the file in order.
   */
  private write(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.writing) return;
    const batch = this.batch;
    this.batch = [];
    if (batch.length === 0 || this.failure) {
      this.settle();
      return;
    }
    let frames: { buffer: Buffer; held: Held[] };
    try {
      frames = this.encode(batch);
    } catch (err) {
      // An event that cannot be encoded cannot be recorded: stop taking new work.
      this.failure = err as Error;
      this.settle();
      return;
    }
    this.writing = true;
    const done = (err: Error | null): void => {
      this.writing = false;
      if (err) this.failure = err;
      else {
        frames.held.forEach((h) => this.hold(h));
        const durable: SpooledEvent[] = frames.held;
        this.opts.onDurable?.(durable);
        this.sink?.(durable);
      }
      if (this.batch.length > 0 && !this.failure) this.write();
      else this.settle();
    };
    fs.write(this.fd, frames.buffer, (err) => (err ? done(err) : fs.fdatasync(this.fd, (e) => done(e))));
  }

  /** Wakes flush() callers once nothing recorded is still unwritten. */
  private settle(): void {
    if (this.writing || (this.batch.length > 0 && !this.failure)) return;
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }

  /** The control plane has durably stored a session's events up to `upTo`. */
  ack(sessionId: string, upTo: number): void {
    // An acknowledgement that arrives after shutdown is simply received again after the restart's replay.
    if (this.closed) return;
    if (upTo <= (this.acked.get(sessionId) ?? 0)) return;
    this.acked.set(sessionId, upTo);
    fs.writeSync(this.acksFd, JSON.stringify({ sid: sessionId, upTo }) + '\n');
    const q = this.unacked.get(sessionId);
    if (q) {
      let n = 0;
      while (n < q.length && q[n]!.seq <= upTo) this.unackedBytes -= q[n++]!.size;
      if (n === q.length) this.unacked.delete(sessionId);
      else q.splice(0, n);
      this.unackedCount -= n;
    }
    if (this.unackedCount === 0 && this.batch.length === 0 && !this.writing) this.compact();
  }

  /** Everything acknowledged: start both files afresh so the spool does not grow forever. */
  private compact(): void {
    fs.ftruncateSync(this.fd, 0);
    fs.ftruncateSync(this.acksFd, 0);
    this.acked.clear();
  }

  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.batch.length === 0 && !this.writing) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push(() => (this.failure ? reject(this.failure) : resolve()));
      if (!this.writing) this.write();
    });
  }

  async close(): Promise<void> {
    await this.flush().catch(() => undefined);
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
    fs.closeSync(this.acksFd);
  }
}
