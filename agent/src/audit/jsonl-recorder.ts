/**
 * Append-only JSON Lines session log, one event a line. Writes are
 * batched by the stream; `flush` waits for the kernel to have them.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { SessionEvent, SessionRecorder } from './events.js';

export class JsonlRecorder implements SessionRecorder {
  private readonly stream: fs.WriteStream;
  private failure: Error | null = null;

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

  record(event: SessionEvent): void {
    if (this.failure) return;
    this.stream.write(JSON.stringify(event) + '\n');
  }

  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    // An empty write's callback fires after every earlier write has been handed to the kernel.
    return new Promise((resolve, reject) => this.stream.write('', (err) => (err ? reject(err) : resolve())));
  }

  close(): Promise<void> {
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
