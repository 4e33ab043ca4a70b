/**
 * Append-only JSON Lines session log, one event a line. Writes are
 * batched by the stream; `flush` waits for the kernel to have them.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SessionEvent, SessionRecorder } from './events.js';

/** Longest an event waits in memory before it is handed to the kernel. */
const FLUSH_INTERVAL_MS = 20;

export class JsonlRecorder implements SessionRecorder {
  private readonly stream: fs.WriteStream;
  private failure: Error | null = null;
  /** Lines waiting for the next batched write: one fs write per event-loop turn, not per event. */
  private pending: string[] = [];
  private pendingBytes = 0;
  private scheduled = false;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.stream = fs.createWriteStream(file, { flags: 'a', mode: 0o600 });
    this.stream.on('error', (err) => {
      this.failure = err;
    });
  }

  /** Set once a write has failed; the data path refuses new work rather than run unrecorded. */
  get error(): Error | null {
    return this.failure;
  }

  get healthy(): boolean {
    return this.failure === null;
  }

  record(event: SessionEvent): void {
    if (this.failure) return;
    const line = JSON.stringify(event) + '\n';
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes >= 256 * 1024) this.writePending();
    else if (!this.scheduled) {
      // A short timer, not setImmediate: under load every fs write is a thread-pool
      // round trip (two context switches), so fewer, larger writes keep the data path fast.
      this.scheduled = true;
      setTimeout(() => this.writePending(), FLUSH_INTERVAL_MS).unref();
    }
  }

  private writePending(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    this.stream.write(batch);
  }

  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    this.writePending();
    // An empty write's callback fires after every earlier write has been handed to the kernel.
    return new Promise((resolve, reject) => this.stream.write('', (err) => (err ? reject(err) : resolve())));
  }

  close(): Promise<void> {
    this.writePending();
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}

/** Reads a JSONL session log back (tests, `warden sessions` in single-file mode). */
export function readJsonl(file: string): SessionEvent[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as SessionEvent);
}
