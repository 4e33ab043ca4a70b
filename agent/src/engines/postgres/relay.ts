/**
 * The relay between an authenticated client and its upstream connection.
 * Both directions go through a FrameScanner, so frames are checked and
 * statements tracked without buffering results; each direction pauses its
 * source while the destination is congested (backpressure end to end).
 */
import type net from 'node:net';
import { FrameScanner } from './wire/frame-scanner.js';
import { backend } from './wire/backend-messages.js';
import { PendingQueue } from './pending.js';
import { FrontendInspector, type StatementPolicy } from './inspect.js';
import { BackendMasker, type FieldPolicy, type StatementSession } from './mask.js';
import type { ResultRecording, SessionEndReason, StatementEvent } from '../../audit/events.js';
import { ResultCapture } from './result-capture.js';
import type { StatementHolds } from './hold.js';
import { listenUpstream, type UpstreamReader } from './upstream-reader.js';

/** What a client may send while one of its statements is held (it normally just waits). */
const MAX_BYTES_WHILE_HELD = 16 * 1024 * 1024;

/** Message types a client may send once logged in (protocol v3). */
const FRONTEND_TYPES = 'BCdcfDEHFPQSX';
/** Frontend frames the relay reads whole; all others stream through. */
const FRONTEND_INSPECT = 'BCDEFPQSX';
/** Backend frames the relay reads whole: answers it attributes to requests (DataRows only on demand). */
const BACKEND_INSPECT = 'CIsEZT123tn';

function table(chars: string): Uint8Array {
  const t = new Uint8Array(256);
  for (const c of chars) t[c.charCodeAt(0)] = 1;
  return t;
}

const frontendInspect = (() => {
  // Unknown types are inspected too so that the handler can refuse them before any byte moves.
  const t = new Uint8Array(256).fill(1);
  for (const c of FRONTEND_TYPES) t[c.charCodeAt(0)] = 0;
  for (const c of FRONTEND_INSPECT) t[c.charCodeAt(0)] = 1;
  return t;
})();
const frontendValid = table(FRONTEND_TYPES);

/**
 * One buffer for a chunk's output. Masked rows come from one slab in order, so
 * neighbours that touch in memory are joined as one view; only a mix is copied.
 * One write beats hundreds of small writes either way.
 */
function coalesce(parts: Buffer[]): Buffer {
  const first = parts[0]!;
  // `.buffer` is a call into C++: read once, and only for parts whose offsets line up.
  const memory = first.buffer;
  let end = first.byteOffset + first.length;
  let contiguous = true;
  for (let i = 1; i < parts.length && contiguous; i++) {
    const p = parts[i]!;
    contiguous = p.byteOffset === end && p.buffer === memory;
    end += p.length;
  }
  return contiguous ? Buffer.from(memory, first.byteOffset, end - first.byteOffset) : Buffer.concat(parts);
}

/** What PostgreSQL sends when an administrator terminates a backend: the end of a session at agent shutdown. */
export function shutdownFatal(): Buffer {
  return backend.errorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command', detail: 'The Warden agent is shutting down.' });
}

/** Ends both sockets politely, and makes sure they are gone a second later. */
export function closeBoth(client: net.Socket, upstream: net.Socket): void {
  client.end();
  upstream.end();
  setTimeout(() => {
    client.destroy();
    upstream.destroy();
  }, 1000).unref();
}

export interface RelayOptions {
  client: net.Socket;
  upstream: net.Socket;
  /** How a plaintext upstream is read (upstream-reader.ts); absent: its 'data' events. */
  upstreamReader?: UpstreamReader;
  maxMessageBytes: number;
  /** The role's policy for this session; null relays without inspection (no policy configured). */
  policy: (StatementPolicy & FieldPolicy) | null;
  /** False once statements can no longer be recorded (fail closed). */
  canRecord?: () => boolean;
  /** Creates the session's approval holds, given how to reach the client between frames. */
  holds?: (notify: (message: Buffer) => void) => StatementHolds;
  /** What to keep of results (sample rows, hash); nothing when absent. */
  results?: ResultRecording;
  /** The session fields each statement event carries. */
  session: StatementSession;
  /** A finished statement, as the session log keeps it. */
  onStatement(event: StatementEvent): void;
  /** Called once, when the relay is over; `cancelUpstream` is set if the server was still working. */
  onEnd(reason: SessionEndReason, detail: string | undefined, upstreamBusy: boolean): void;
}

export class Relay {
  private ended = false;
  private readonly inspector: FrontendInspector;
  private readonly masker: BackendMasker;
  private readonly fromClient: FrameScanner;
  private readonly fromUpstream: FrameScanner;
  private terminating = false;
  /** What one input chunk produced, written in one go: usually a single buffer, so a single write. */
  private readonly toUpstream: Buffer[] = [];
  private readonly toClient: Buffer[] = [];
  /** True while a socket's data handler runs; output produced later (a delayed verdict) is written at once. */
  private inPush = false;
  /** Messages of the agent's own waiting for a point between backend frames. */
  private readonly deferred: Buffer[] = [];
  private readonly holds: StatementHolds | null;
  private bytesWhileHeld = 0;
  /** Shutting down: the client is no longer read, only what is in flight is answered. */
  private draining = false;
  /**
   * Statements completed by the chunk being relayed. They are recorded once the chunk's output
   * has been written: the client gets its answer without waiting for the record to be encoded.
   */
  private readonly completed: StatementEvent[] = [];

  constructor(private readonly opts: RelayOptions) {
    const { client, upstream } = opts;
    const queue = new PendingQueue();
    // Per session: the masker switches DataRow inspection on and off as results need it.
    const backendInspect = table(BACKEND_INSPECT);
    this.holds = opts.holds ? opts.holds((m) => this.notify(m)) : null;
    this.inspector = new FrontendInspector(queue, opts.policy, opts.canRecord, this.holds);
    const results = opts.results;
    const capture = results && (results.sampleRows > 0 || results.hash) ? new ResultCapture(results) : null;
    this.masker = new BackendMasker(queue, backendInspect, opts.policy, this.inspector.prepared, opts.session, (e) => this.finished(e), capture, this.holds);

    this.fromClient = new FrameScanner({
      inspect: frontendInspect,
      maxFrameBytes: opts.maxMessageBytes,
      maxStreamedFrameBytes: opts.maxMessageBytes,
      emit: (b) => {
        this.toUpstream.push(b);
        if (!this.inPush) this.drain(this.toUpstream, upstream, client);
      },
      onFrame: (type, frame) => {
        if (!frontendValid[type]) {
          throw new Error(`unknown frontend message type 0x${type.toString(16).padStart(2, '0')}`);
        }
        if (type === 0x58) this.terminating = true; // Terminate: forward it, then expect the close
        return this.inspector.frame(type, frame);
      },
      onProtocolError: (message) => this.fail('protocol_error', message),
    });

    this.fromUpstream = new FrameScanner({
      inspect: backendInspect,
      // Server frames are trusted for size, but completions/errors are small.
      maxFrameBytes: 64 * 1024 * 1024,
      emit: (b) => {
        this.toClient.push(b);
        if (!this.inPush) this.drain(this.toClient, client, upstream);
      },
      onStreamed: (type) => this.masker.streamed(type),
      ...(capture ? { onStreamedBytes: (buf: Buffer, start: number, end: number) => this.masker.streamedBytes(buf, start, end) } : {}),
      onFrame: (type, frame) => this.masker.frame(type, frame),
      onProtocolError: (message) => this.end('upstream_error', `invalid data from upstream: ${message}`),
    });
  }

  /** Starts relaying; `pending` is anything the client sent right after its password. */
  start(pending?: Buffer): void {
    const { client, upstream } = this.opts;
    this.fromUpstream.onDrained = () => {
      if (!this.ended) upstream.resume();
    };
    client.on('data', (chunk: Buffer) => {
      if (this.fromClient.isStalled && (this.bytesWhileHeld += chunk.length) > MAX_BYTES_WHILE_HELD) {
        this.fail('protocol_error', 'too much data sent while a statement waits for approval');
        return;
      }
      if (!this.fromClient.isStalled) this.bytesWhileHeld = 0;
      this.inPush = true;
      this.fromClient.push(chunk);
      this.inPush = false;
      this.drain(this.toClient, client, upstream);
      this.drain(this.toUpstream, upstream, client);
      this.recordCompleted();
    });
    listenUpstream(upstream, this.opts.upstreamReader, (chunk: Buffer) => {
      this.inPush = true;
      this.fromUpstream.push(chunk);
      this.inPush = false;
      // A result held at the row limit: the server waits (TCP backpressure) instead of the agent buffering it.
      if (this.fromUpstream.isStalled) upstream.pause();
      if (this.deferred.length > 0 && this.fromUpstream.atBoundary) this.toClient.push(...this.deferred.splice(0));
      this.drain(this.toClient, client, upstream);
      this.recordCompleted();
    });
    client.on('end', () => this.end(this.terminating ? 'client_terminate' : 'client_disconnect'));
    client.on('close', () => this.end(this.terminating ? 'client_terminate' : 'client_disconnect'));
    client.on('error', (err) => this.end('client_disconnect', err.message));
    upstream.on('end', () => this.end(this.terminating ? 'client_terminate' : 'upstream_closed'));
    upstream.on('close', () => this.end(this.terminating ? 'client_terminate' : 'upstream_closed'));
    upstream.on('error', (err) => this.end('upstream_error', err.message));
    if (pending && pending.length > 0) this.fromClient.push(pending);
  }

  private finished(event: StatementEvent): void {
    if (this.inPush) this.completed.push(event);
    else this.opts.onStatement(event);
  }

  /** Statements recorded in this session so far. */
  get statements(): number {
    return this.masker.statements;
  }

  /** Hands the statements finished by the last chunk to the recorder, in order. */
  private recordCompleted(): void {
    const n = this.completed.length;
    if (n === 0) return;
    for (let i = 0; i < n; i++) this.opts.onStatement(this.completed[i]!);
    this.completed.length = 0;
  }

  /** Sends a message of the agent's own to the client, never inside a backend frame. */
  notify(message: Buffer): void {
    if (this.ended) return;
    // A stalled scanner waits on a whole frame: everything before it has gone out whole.
    if (!this.fromUpstream.atBoundary && !this.fromUpstream.isStalled) {
      this.deferred.push(message);
      return;
    }
    this.toClient.push(message);
    if (!this.inPush) this.drain(this.toClient, this.opts.client, this.opts.upstream);
  }

  /** The client's cancel: a held statement stops waiting (nothing runs upstream yet). */
  cancelHeld(): boolean {
    return this.holds?.cancel() ?? false;
  }

  /** Writes what is queued for `sink`; pauses `source` while `sink` is congested. */
  private drain(queue: Buffer[], sink: net.Socket, source: net.Socket): void {
    const n = queue.length;
    if (n === 0) return;
    const ok = sink.write(n === 1 ? queue[0]! : coalesce(queue));
    queue.length = 0;
    if (!ok) this.throttle(source, sink);
  }

  /** Pauses `source` until `sink` drains. */
  private throttle(source: net.Socket, sink: net.Socket): void {
    if (source.isPaused()) return;
    source.pause();
    sink.once('drain', () => {
      if (!this.ended && !(this.draining && source === this.opts.client)) source.resume();
    });
  }

  /** A client protocol violation: tell the client why (if framing allows) and end. */
  private fail(reason: SessionEndReason, message: string): void {
    if (this.ended) return;
    if (this.fromUpstream.atBoundary) {
      this.opts.client.write(backend.errorResponse({ severity: 'FATAL', code: '08P01', message: `invalid frontend message: ${message}` }));
    }
    this.end(reason, message);
  }

  /**
   * Graceful end for an agent shutdown: read nothing more from the client, let what is in flight
   * (including a statement waiting for approval) finish for up to `graceMs`, then send FATAL
   * 57P01 — what PostgreSQL sends when an administrator terminates a backend — and end.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.ended) return;
    this.draining = true;
    this.opts.client.pause();
    const deadline = Date.now() + graceMs;
    while (!this.ended && this.masker.busy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.ended) return;
    const { client } = this.opts;
    // Mid-frame (a large row still streaming) nothing can be inserted: the close alone tells the client.
    if (this.fromUpstream.atBoundary && !client.destroyed) {
      client.write(shutdownFatal());
    }
    this.end('agent_shutdown');
  }

  end(reason: SessionEndReason, detail?: string): void {
    if (this.ended) return;
    this.ended = true;
    this.recordCompleted();
    const { client, upstream } = this.opts;
    const busy = this.masker.busy && reason !== 'upstream_closed' && reason !== 'upstream_error';
    this.holds?.end(reason === 'client_disconnect' ? 'the client disconnected' : `the session ended (${reason})`);
    if (reason === 'upstream_closed' || reason === 'upstream_error') {
      if (this.fromUpstream.atBoundary && !client.destroyed) {
        client.write(
          backend.errorResponse({
            severity: 'FATAL',
            code: '08006',
            message: 'the connection to the upstream database was lost',
          }),
        );
      }
    }
    closeBoth(client, upstream);
    this.opts.onEnd(reason, detail, busy);
  }
}
