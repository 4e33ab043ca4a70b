/**
 * A streaming splitter for PostgreSQL protocol v3 messages (type byte +
 * Int32 length). It is the one place the data path walks bytes, in both
 * directions, and it follows pg-protocol's discipline: no copy for frames
 * that pass through untouched.
 *
 * Frames whose type is marked in `inspect` are handed to `onFrame` whole
 * (assembled across chunks if needed, bounded by `maxFrameBytes`); the
 * handler may pass them on, replace them or drop them, synchronously or by
 * returning a promise, in which case the scanner stalls, queues what
 * arrives meanwhile and resumes in order. Every other frame streams
 * through without being buffered, however large, so a 1 GB result never
 * lives in memory: only its frame boundaries are tracked.
 */

export type FrameVerdict = Buffer | null | undefined;

const STOP = Symbol('stop');

export interface FrameScannerOptions {
  /** 256-entry table: non-zero for message types to deliver whole to onFrame. */
  inspect: Uint8Array;
  /** Upper bound for an inspected frame; longer ones are a protocol error. */
  maxFrameBytes: number;
  /** Upper bound for any frame (including streamed ones). */
  maxStreamedFrameBytes?: number;
  /** Whole inspected frame (type byte included). undefined = pass, Buffer = replace, null = drop. */
  onFrame(type: number, frame: Buffer): FrameVerdict | Promise<FrameVerdict>;
  /** Called at the start of each streamed (not inspected) frame. */
  onStreamed?(type: number, totalLength: number): void;
  /** The bytes of streamed frames as they pass, header included, as ranges of the output (no copy). */
  onStreamedBytes?(buf: Buffer, start: number, end: number): void;
  /** Output. Subarrays of input chunks are passed as-is: consumers must not keep them mutable. */
  emit(chunk: Buffer): void;
  /** Called when the stream is not valid protocol; the scanner stops. */
  onProtocolError(message: string): void;
}

export class FrameScanner {
  private readonly header = Buffer.alloc(5);
  private headerFill = 0;
  private collecting: Buffer | null = null;
  private collectFill = 0;
  private streamRemaining = 0;
  private stalled = false;
  private failed = false;
  private readonly backlog: Buffer[] = [];

  constructor(private readonly opts: FrameScannerOptions) {}

  /** True between frames: a message of our own may be injected into the output here. */
  get atBoundary(): boolean {
    return this.headerFill === 0 && this.collecting === null && this.streamRemaining === 0 && !this.stalled;
  }

  /** True while an asynchronous verdict is pending; the caller should pause its source. */
  get isStalled(): boolean {
    return this.stalled;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    if (this.stalled) {
      this.backlog.push(chunk);
      return;
    }
    this.scan(chunk, 0);
  }

  private scan(chunk: Buffer, start: number): void {
    const { opts } = this;
    const len = chunk.length;
    let pos = start;
    let passStart = start;
    const flushPass = (end: number): void => {
      if (end > passStart) opts.emit(chunk.subarray(passStart, end));
      passStart = end;
    };

    while (pos < len) {
      if (this.streamRemaining > 0) {
        const n = Math.min(this.streamRemaining, len - pos);
        opts.onStreamedBytes?.(chunk, pos, pos + n);
        pos += n;
        this.streamRemaining -= n;
        continue;
      }

      if (this.collecting !== null) {
        const frame = this.collecting;
        const n = Math.min(frame.length - this.collectFill, len - pos);
        chunk.copy(frame, this.collectFill, pos, pos + n);
        this.collectFill += n;
        pos += n;
        passStart = pos;
        if (this.collectFill < frame.length) continue;
        this.collecting = null;
        if (this.deliver(frame[0]!, frame, chunk, pos)) return;
        continue;
      }

      if (this.headerFill === 0 && len - pos >= 5) {
        const type = chunk[pos]!;
        const total = chunk.readInt32BE(pos + 1) + 1;
        if (!this.validLength(type, total)) return;
        if (opts.inspect[type]) {
          if (pos + total <= len) {
            const frameStart = pos;
            const frame = chunk.subarray(pos, pos + total);
            pos += total;
            const verdict = this.judge(type, frame);
            if (verdict === undefined) continue; // stays inside the pass region: no copy, no extra write
            flushPass(frameStart);
            passStart = pos;
            if (verdict === STOP) return;
            if (verdict instanceof Promise) {
              this.stall(verdict, frame, chunk, pos);
              return;
            }
            if (verdict !== null) opts.emit(verdict);
            continue;
          }
          flushPass(pos);
          this.collecting = Buffer.allocUnsafe(total);
          this.collectFill = 0;
          continue; // the collecting branch copies from pos
        }
        opts.onStreamed?.(type, total);
        const n = Math.min(total, len - pos);
        opts.onStreamedBytes?.(chunk, pos, pos + n);
        pos += n;
        this.streamRemaining = total - n;
        continue;
      }

      // Fewer than five bytes left: the header straddles two chunks.
      flushPass(pos);
      const n = Math.min(5 - this.headerFill, len - pos);
      chunk.copy(this.header, this.headerFill, pos, pos + n);
      this.headerFill += n;
      pos += n;
      passStart = pos;
      if (this.headerFill < 5) continue;
      this.headerFill = 0;
      const type = this.header[0]!;
      const total = this.header.readInt32BE(1) + 1;
      if (!this.validLength(type, total)) return;
      if (opts.inspect[type]) {
        this.collecting = Buffer.allocUnsafe(total);
        this.header.copy(this.collecting, 0);
        this.collectFill = 5;
        if (total === 5) {
          const frame = this.collecting;
          this.collecting = null;
          if (this.deliver(type, frame, chunk, pos)) return;
        }
      } else {
        opts.onStreamed?.(type, total);
        const header = Buffer.from(this.header);
        opts.onStreamedBytes?.(header, 0, 5);
        opts.emit(header);
        this.streamRemaining = total - 5;
      }
    }
    flushPass(len);
  }

  /** Runs the handler; STOP means the scanner has failed. */
  private judge(type: number, frame: Buffer): FrameVerdict | Promise<FrameVerdict> | typeof STOP {
    try {
      return this.opts.onFrame(type, frame);
    } catch (err) {
      this.fail(`frame handler failed: ${(err as Error).message}`);
      return STOP;
    }
  }

  private stall(verdict: Promise<FrameVerdict>, frame: Buffer, chunk: Buffer, resumeAt: number): void {
    this.stalled = true;
    verdict.then(
      (v) => this.resume(frame, v, chunk, resumeAt),
      (err: unknown) => this.fail(`frame handler failed: ${(err as Error).message}`),
    );
  }

  /** Delivers a frame the scanner assembled itself. Returns true if scanning must stop. */
  private deliver(type: number, frame: Buffer, chunk: Buffer, resumeAt: number): boolean {
    const verdict = this.judge(type, frame);
    if (verdict === STOP) return true;
    if (verdict instanceof Promise) {
      this.stall(verdict, frame, chunk, resumeAt);
      return true;
    }
    this.emitVerdict(frame, verdict);
    return false;
  }

  private emitVerdict(frame: Buffer, verdict: FrameVerdict): void {
    if (verdict === undefined) this.opts.emit(frame);
    else if (verdict !== null) this.opts.emit(verdict);
  }

  private resume(frame: Buffer, verdict: FrameVerdict, chunk: Buffer, resumeAt: number): void {
    if (this.failed) return;
    this.emitVerdict(frame, verdict);
    this.stalled = false;
    if (resumeAt < chunk.length) this.scan(chunk, resumeAt);
    while (!this.stalled && !this.failed && this.backlog.length > 0) {
      this.scan(this.backlog.shift()!, 0);
    }
    if (!this.stalled) this.onDrained?.();
  }

  /** Called when a stall has been fully worked off; the caller resumes its source. */
  onDrained?: () => void;

  private validLength(type: number, total: number): boolean {
    if (total < 5) {
      this.fail(`invalid message length ${total - 1} for message type 0x${type.toString(16)}`);
      return false;
    }
    const limit = this.opts.inspect[type] ? this.opts.maxFrameBytes : (this.opts.maxStreamedFrameBytes ?? 0x40000000);
    if (total > limit) {
      this.fail(`message of ${total - 1} bytes exceeds the ${limit}-byte limit`);
      return false;
    }
    return true;
  }

  private fail(message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.opts.onProtocolError(message);
  }
}
