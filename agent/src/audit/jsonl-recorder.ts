/**
 * Append-only JSON Lines session log, one event a line. Lines are batched
 * into reused buffers, one write per batch; `flush` waits for the kernel to
 * have them.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SessionEvent, SessionRecorder } from './events.js';
import { statementJson } from './statement-json.js';

/** Longest an event waits in memory before it is handed to the kernel. */
const FLUSH_INTERVAL_MS = 20;
/** A batch is written once it holds this much; its buffer is reused after the write. */
const BATCH_BYTES = 256 * 1024;
/** Spare batch buffers kept for reuse; more are made only while the disk lags. */
const SPARE_BUFFERS = 2;
const NEWLINE = 0x0a;
const NEWLINE_BYTES = Buffer.from('\n');

export class JsonlRecorder implements SessionRecorder {
  private readonly stream: fs.WriteStream;
  private failure: Error | null = null;
  /**
   * Lines are encoded straight into a preallocated buffer: one fs write per batch, and no large
   * string or Buffer made per batch (each would be fresh memory, page-faulted in under load).
   */
  private batch: Buffer = Buffer.allocUnsafeSlow(BATCH_BYTES);
  private used = 0;
  private readonly spares: Buffer[] = [];
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
    // Statements are nearly every line: they have a writer of their own (statement-json.ts).
    const line = event.type === 'statement' ? statementJson(event) : JSON.stringify(event);
    // UTF-8 needs at most three bytes per UTF-16 unit.
    if (!this.room(line.length * 3 + 1)) {
      this.stream.write(line + '\n');
      return;
    }
    this.used += this.batch.write(line, this.used, 'utf8');
    this.endLine();
  }

  recordStatementLine(line: Buffer): void {
    if (this.failure) return;
    if (!this.room(line.length + 1)) {
      this.stream.write(Buffer.concat([line, NEWLINE_BYTES]));
      return;
    }
    this.used += line.copy(this.batch, this.used);
    this.endLine();
  }

  /**
   * Makes room in the batch for a line of at most `worst` bytes (newline included): a line that may
   * not fit waits for the next batch. False when it is larger than any batch (it is written alone).
   */
  private room(worst: number): boolean {
    if (this.used + worst <= this.batch.length) return true;
    this.writePending();
    return worst <= this.batch.length;
  }

  private endLine(): void {
    this.batch[this.used++] = NEWLINE;
    if (!this.scheduled) {
      // A short timer, not setImmediate: under load every fs write is a thread-pool
      // round trip (two context switches), so fewer, larger writes keep the data path fast.
      this.scheduled = true;
      setTimeout(() => this.writePending(), FLUSH_INTERVAL_MS).unref();
    }
  }

  private writePending(): void {
    this.scheduled = false;
    if (this.used === 0) return;
    const full = this.batch;
    const bytes = full.subarray(0, this.used);
    this.batch = this.spares.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES);
    this.used = 0;
    // The buffer is free again once the kernel has its bytes.
    this.stream.write(bytes, (err) => {
      if (err) this.failure ??= err;
      if (this.spares.length < SPARE_BUFFERS) this.spares.push(full);
    });
  }

  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    this.writePending();
    // An empty write's callback fires after every earlier write has been handed to the kernel.
    return new Promise((resolve, reject) => this.stream.write('', (err) => (err ? reject((this.failure ??= err)) : resolve())));
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
