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
  /** Unacknowledged events in order, with their encoded size. */
  private readonly unacked: Array<SpooledEvent & { bytes: number }> = [];
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
      const bytes = Buffer.byteLength(line) + 1;
      this.unacked.push({ ...e, bytes });
      this.unackedBytes += bytes;
    }
  }

  get healthy(): boolean {
    return this.failure === null && this.unackedBytes < (this.opts.limitBytes ?? 1 << 30);
  }

  get error(): Error | null {
    return this.failure;
  }

  /** Events not yet acknowledged, oldest first (replayed to the control plane on reconnect). */
  pending(): SpooledEvent[] {
    return this.unacked.map(({ sessionId, seq, event }) => ({ sessionId, seq, event }));
  }

  /** Events recorded but not acknowledged yet (written or still in the batch), and the oldest one's time. */
  backlog(): { events: number; oldestAt?: string } {
    const oldest = this.unacked[0] ?? this.batch[0];
    return { events: this.unacked.length + this.batch.length, ...(oldest ? { oldestAt: oldest.event.at } : {}) };
  }

  /** Resolves once every event recorded so far is acknowledged, or after `timeoutMs` (false then). */
  async acknowledged(timeoutMs: number): Promise<boolean> {
    await this.flush().catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    while (this.unacked.length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.unacked.length === 0;
  }

  record(event: SessionEvent): void {
    if (this.failure) return;
    const seq = (this.seqs.get(event.sessionId) ?? 0) + 1;
    this.seqs.set(event.sessionId, seq);
    this.batch.push({ sessionId: event.sessionId, seq, event });
    this.timer ??= setTimeout(() => this.write(), this.opts.flushMs ?? 10);
  }

  private write(): void {
    this.timer = null;
    const batch = this.batch;
    this.batch = [];
    if (batch.length > 0 && !this.failure) {
      const lines = batch.map((e) => JSON.stringify(e) + '\n');
      try {
        fs.writeSync(this.fd, lines.join(''));
        fs.fdatasyncSync(this.fd);
        batch.forEach((e, i) => {
          const bytes = Buffer.byteLength(lines[i]!);
          this.unacked.push({ ...e, bytes });
          this.unackedBytes += bytes;
        });
        this.opts.onDurable?.(batch);
        this.sink?.(batch);
      } catch (err) {
        this.failure = err as Error;
      }
    }
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
    let i = 0;
    for (let j = 0; j < this.unacked.length; j++) {
      const e = this.unacked[j]!;
      if (e.sessionId === sessionId && e.seq <= upTo) this.unackedBytes -= e.bytes;
      else this.unacked[i++] = e;
    }
    this.unacked.length = i;
    if (this.unacked.length === 0 && this.batch.length === 0) this.compact();
  }

  /** Everything acknowledged: start both files afresh so the spool does not grow forever. */
  private compact(): void {
    fs.ftruncateSync(this.fd, 0);
    fs.ftruncateSync(this.acksFd, 0);
    this.acked.clear();
  }

  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.batch.length === 0 && !this.timer) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push(() => (this.failure ? reject(this.failure) : resolve()));
      if (this.timer) {
        clearTimeout(this.timer);
        this.write();
      }
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
