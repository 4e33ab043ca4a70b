/**
 * The agent's durable audit spool: every event is appended to a local file
 * and fsync'd (in batches, so one fsync covers many events) before the
 * agent considers it recorded; events stay until the control plane has
 * acknowledged them (by session id + sequence), and are replayed after a
 * restart. If the spool cannot write, or grows past its limit because the
 * control plane has been away too long, `healthy` turns false and the data
 * path refuses new work: nothing runs unrecorded.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SessionEvent, SessionRecorder } from './events.js';

export interface SpooledEvent {
  sessionId: string;
  seq: number;
  event: SessionEvent;
}

export interface DurableSpoolOptions {
  dir: string;
  /** Refuse new work when unacknowledged events exceed this many bytes. Default 1 GiB. */
  limitBytes?: number;
  /** Longest an event waits before its batch is written and fsync'd. Default 10 ms. */
  flushMs?: number;
  /** Called with events once they are durable, to stream them on. */
  onDurable?: (events: SpooledEvent[]) => void;
}

export class DurableSpool implements SessionRecorder {
  private readonly eventsFile: string;
  private readonly acksFile: string;
  private fd: number;
  private acksFd: number;
  private failure: Error | null = null;
  private batch: SpooledEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly seqs = new Map<string, number>();
  /**
   * Unacknowledged events with their encoded size, per session in sequence order, so an
   * acknowledgement drops a session's prefix without walking everyone else's events.
   */
  private readonly unacked = new Map<string, Array<SpooledEvent & { bytes: number }>>();
  private unackedCount = 0;
  private readonly acked = new Map<string, number>();
  private unackedBytes = 0;
  private waiters: Array<() => void> = [];
  private closed = false;
  /** Where durable events go next (the control-plane link sets this while connected). */
  sink: ((events: SpooledEvent[]) => void) | undefined;

  constructor(private readonly opts: DurableSpoolOptions) {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    this.eventsFile = path.join(opts.dir, 'spool.jsonl');
    this.acksFile = path.join(opts.dir, 'acks.jsonl');
    this.replay();
    this.fd = fs.openSync(this.eventsFile, 'a', 0o600);
    this.acksFd = fs.openSync(this.acksFile, 'a', 0o600);
  }

  /** Rebuilds what is still unacknowledged from the files a previous run left. */
  private replay(): void {
    if (fs.existsSync(this.acksFile)) {
      for (const line of fs.readFileSync(this.acksFile, 'utf8').split('\n')) {
        if (!line) continue;
        const { sid, upTo } = JSON.parse(line) as { sid: string; upTo: number };
        this.acked.set(sid, Math.max(this.acked.get(sid) ?? 0, upTo));
      }
    }
    // Only a regular file holds spooled events (a device such as /dev/full has nothing to replay).
    if (!fs.existsSync(this.eventsFile) || !fs.statSync(this.eventsFile).isFile()) return;
    const text = fs.readFileSync(this.eventsFile, 'utf8');
    const lines = text.split('\n');
    // A crash can leave a half-written last line; everything before it was fsync'd whole.
    if (!text.endsWith('\n')) lines.pop();
    for (const line of lines) {
      if (!line) continue;
      const e = JSON.parse(line) as SpooledEvent;
      this.seqs.set(e.sessionId, Math.max(this.seqs.get(e.sessionId) ?? 0, e.seq));
      if (e.seq <= (this.acked.get(e.sessionId) ?? 0)) continue;
      this.hold({ ...e, bytes: Buffer.byteLength(line) + 1 });
    }
  }

  get healthy(): boolean {
    return this.failure === null && this.unackedBytes < (this.opts.limitBytes ?? 1 << 30);
  }

  get error(): Error | null {
    return this.failure;
  }

  private hold(e: SpooledEvent & { bytes: number }): void {
    let q = this.unacked.get(e.sessionId);
    if (!q) this.unacked.set(e.sessionId, (q = []));
    q.push(e);
    this.unackedBytes += e.bytes;
    this.unackedCount++;
  }

  /** Events not yet acknowledged, each session's in order (replayed to the control plane on reconnect). */
  pending(): SpooledEvent[] {
    const out: SpooledEvent[] = [];
    for (const q of this.unacked.values()) for (const { sessionId, seq, event } of q) out.push({ sessionId, seq, event });
    return out;
  }

  /** How many events wait for an acknowledgement. */
  get pendingCount(): number {
    return this.unackedCount;
  }

  /** Events recorded but not acknowledged yet (written or still in the batch), and the oldest one's time. */
  backlog(): { events: number; oldestAt?: string } {
    let oldest: string | undefined;
    for (const q of this.unacked.values()) if (q[0] && (oldest === undefined || q[0].event.at < oldest)) oldest = q[0].event.at;
    oldest ??= this.batch[0]?.event.at;
    return { events: this.unackedCount + this.batch.length, ...(oldest ? { oldestAt: oldest } : {}) };
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
    this.batch.push({ sessionId: event.sessionId, seq, event });
    this.timer ??= setTimeout(() => this.write(), this.opts.flushMs ?? 10);
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
    const lines = batch.map((e) => JSON.stringify(e) + '\n');
    this.writing = true;
    const done = (err: Error | null): void => {
      this.writing = false;
      if (err) this.failure = err;
      else {
        batch.forEach((e, i) => this.hold({ ...e, bytes: Buffer.byteLength(lines[i]!) }));
        this.opts.onDurable?.(batch);
        this.sink?.(batch);
      }
      if (this.batch.length > 0 && !this.failure) this.write();
      else this.settle();
    };
    fs.write(this.fd, lines.join(''), (err) => (err ? done(err) : fs.fdatasync(this.fd, (e) => done(e))));
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
      while (n < q.length && q[n]!.seq <= upTo) this.unackedBytes -= q[n++]!.bytes;
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
