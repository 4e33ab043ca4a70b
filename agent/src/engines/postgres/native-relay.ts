/**
 * Forward, natively: sessions that need no inspection before a byte moves
 * (relay-only enforcement, plaintext on both sides) are relayed by a C++
 * thread (agent/native), which owns duplicates of both sockets from the end
 * of the login to the end of the session. It checks every client frame
 * (type, length, and the fields of statement frames) before forwarding it,
 * writes server chunks to the client as read, and keeps the books a session
 * without a policy needs: which statement each answer belongs to, its rows,
 * the SHA-256 of its DataRows and the first rows as a sample
 * (relay_statements.cc, following inspect.ts and mask.ts rule for rule). It
 * hands this module one record per finished statement, in batches of up to
 * ~10 ms: for a recorder that keeps JSON lines, the line itself
 * (relay_record.cc), which is only appended; otherwise a compact record that
 * native-records.ts turns into the event. Either way it is what relay.ts
 * records, at a fraction of the JavaScript per statement.
 *
 * Fail closed: while the recorder cannot write, the relay replaces each
 * Query, FunctionCall, Parse and Execute with something the server refuses
 * (relay_frames.cc), so nothing runs unrecorded. The flag it reads is
 * refreshed every 20 ms and after every batch.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type net from 'node:net';
import type { StatementSession } from './mask.js';
import { NativeStatementReader } from './native-records.js';
import type { UpstreamReader } from './upstream-reader.js';
import { closeBoth, shutdownFatal } from './relay.js';
import type { ResultRecording, SessionEndReason, StatementEvent } from '../../audit/events.js';

type LoopHandle = { readonly __nativeRelayLoop: unique symbol };

interface NativeBinding {
  create(onBatch: (batch: Buffer) => void): LoopHandle;
  add(
    loop: LoopHandle,
    clientFd: number,
    upstreamFd: number,
    clientPending: Buffer | null,
    upstreamPending: Buffer | null,
    maxMessageBytes: number,
    sampleRows: number,
    hash: boolean,
    jsonSessionId: string | null,
    jsonBundleVersion: string | null,
  ): number;
  drain(loop: LoopHandle, id: number): void;
  flush(loop: LoopHandle, token: number): void;
  end(loop: LoopHandle, id: number, reason: number, fatal: Buffer | null): void;
  ack(loop: LoopHandle, bytes: number): void;
  setRecordable(loop: LoopHandle, recordable: boolean): void;
  stop(loop: LoopHandle): void;
}

/** Record kinds and end reasons as relay_common.h numbers them. */
const STATEMENT = 1, IDLE = 2, END = 3, MARK = 4, STATEMENT_LINE = 5;
const REASONS: SessionEndReason[] = ['client_terminate', 'client_disconnect', 'upstream_closed', 'upstream_error', 'protocol_error', 'agent_shutdown'];
const RECORD_HEADER = 17;
const SURROGATE = /[\ud800-\udfff]/;

/** Where the addon is, relative to the repository (or image) root: node-gyp's output, copied as is into the agent image. */
export const NATIVE_ADDON_PATH = path.join('agent', 'native', 'build', 'Release', 'warden_relay.node');

/** The compiled addon, found from this file upwards (source tree or dist/); null when it was not built. */
export function loadNativeBinding(): NativeBinding | null {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = path.join(dir, NATIVE_ADDON_PATH);
    if (fs.existsSync(candidate)) return createRequire(import.meta.url)(candidate) as NativeBinding;
    dir = path.dirname(dir);
  }
  return null;
}

/**
 * Stops libuv reading a socket, as Socket.pause does for `onread` sockets: a
 * paused stream would otherwise keep reading into its buffer.
 */
function stopReading(socket: net.Socket): void {
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } })._handle;
  socket.pause();
  if (handle?.readStop && handle.reading !== false) {
    handle.reading = false;
    handle.readStop();
  }
}

/** Node's descriptor for a plaintext TCP socket (the relay duplicates it). */
function descriptorOf(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

export interface NativeSessionOptions {
  client: net.Socket;
  upstream: net.Socket;
  upstreamReader?: UpstreamReader;
  maxMessageBytes: number;
  results?: ResultRecording;
  session: StatementSession;
  onStatement(event: StatementEvent): void;
  /**
   * Given when the recorder keeps JSON lines: the relay then writes each statement's line itself
   * (relay_record.cc), and statements come here as lines.
   */
  onStatementLine?(line: Buffer): void;
  onEnd(reason: SessionEndReason, detail: string | undefined, upstreamBusy: boolean): void;
}

/** One native thread for all of an agent's relay-only sessions. */
export class NativeRelayLoop {
  private readonly handle: LoopHandle;
  private readonly sessions = new Map<number, NativeRelay>();
  private readonly timer: NodeJS.Timeout;
  private recordable = true;
  private readonly flushes = new Map<number, () => void>();
  private nextFlush = 1;
  private stopped = false;
  /** Sessions this loop has carried (observable by tests and metrics). */
  started = 0;
  /** Statements that arrived as the JSON lines the relay wrote, and as records decoded here. */
  readonly statements = { lines: 0, records: 0 };

  constructor(
    private readonly binding: NativeBinding,
    private readonly canRecord: () => boolean,
  ) {
    this.handle = binding.create((batch) => this.deliver(batch));
    this.timer = setInterval(() => this.refreshRecordable(), 20).unref();
  }

  /** Whether both sockets can be handed over (plaintext TCP with a descriptor). */
  static eligible(client: net.Socket, upstream: net.Socket): boolean {
    const plain = (s: net.Socket): boolean => descriptorOf(s) !== undefined && !('encrypted' in s) && s.readableLength === 0;
    return plain(client) && plain(upstream);
  }

  /** Hands a logged-in session to the native thread; `pending` is what the client sent after its password. */
  start(opts: NativeSessionOptions, pending: Buffer): NativeRelay {
    return new NativeRelay(this, opts, pending);
  }

  /** @internal */
  register(opts: NativeSessionOptions, clientPending: Buffer, upstreamPending: Buffer, relay: NativeRelay): number {
    const clientFd = descriptorOf(opts.client);
    const upstreamFd = descriptorOf(opts.upstream);
    if (clientFd === undefined || upstreamFd === undefined || this.stopped) return 0;
    const r = opts.results;
    // Session fields with surrogates (which JSON.stringify may escape) keep the statements in JavaScript.
    const json = opts.onStatementLine !== undefined && !SURROGATE.test(opts.session.id + (opts.session.bundleVersion ?? ''));
    const id = this.binding.add(
      this.handle,
      clientFd,
      upstreamFd,
      clientPending.length > 0 ? clientPending : null,
      upstreamPending.length > 0 ? upstreamPending : null,
      opts.maxMessageBytes,
      r?.sampleRows ?? 0,
      r?.hash ?? false,
      json ? opts.session.id : null,
      json ? (opts.session.bundleVersion ?? null) : null,
    );
    if (id !== 0) {
      this.sessions.set(id, relay);
      this.started++;
    }
    return id;
  }

  /** @internal */
  command(kind: 'drain' | 'end', id: number, reason?: SessionEndReason, fatal?: Buffer): void {
    if (this.stopped) return;
    if (kind === 'drain') this.binding.drain(this.handle, id);
    else this.binding.end(this.handle, id, REASONS.indexOf(reason ?? 'agent_shutdown'), fatal ?? null);
  }

  private refreshRecordable(): void {
    const now = this.canRecord();
    if (now !== this.recordable && !this.stopped) {
      this.recordable = now;
      this.binding.setRecordable(this.handle, now);
    }
  }

  private deliver(batch: Buffer): void {
    let pos = 0;
    while (pos + RECORD_HEADER <= batch.length) {
      const id = batch.readUInt32LE(pos);
      const kind = batch[pos + 4]!;
      const at = batch.readDoubleLE(pos + 5);
      const length = batch.readUInt32LE(pos + 13);
      const payload = batch.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + length);
      pos += RECORD_HEADER + length;
      if (kind === MARK) {
        const token = payload.readUInt32LE(0);
        this.flushes.get(token)?.();
        this.flushes.delete(token);
        continue;
      }
      const relay = this.sessions.get(id);
      if (!relay) continue;
      if (kind === END) this.sessions.delete(id);
      try {
        relay.replay(kind, at, payload);
      } catch (err) {
        // A session whose records cannot be read (a malformed RowDescription from the server, say) is not
        // relayed further, as relay.ts ends one whose frame handler fails; the others go on.
        this.sessions.delete(id);
        if (kind !== END) this.binding.end(this.handle, id, REASONS.indexOf('protocol_error'), null);
        relay.failed(`frame handler failed: ${(err as Error).message}`);
      }
    }
    if (!this.stopped) this.binding.ack(this.handle, batch.length);
    this.refreshRecordable();
  }

  /** Resolves once every record the relay had logged when called has been replayed (and handed to the recorder). */
  flush(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const token = this.nextFlush++;
    return new Promise((resolve) => {
      this.flushes.set(token, resolve);
      this.binding.flush(this.handle, token);
    });
  }

  /** Ends every session still open (agent_shutdown), delivers their records, and stops the thread. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    for (const [id] of this.sessions) this.binding.end(this.handle, id, REASONS.indexOf('agent_shutdown'), null);
    await this.flush();
    clearInterval(this.timer);
    this.binding.stop(this.handle);
    this.stopped = true;
  }
}

/** A session on the native relay: the same surface session.ts uses of a Relay. */
export class NativeRelay {
  private readonly reader: NativeStatementReader;
  private id = 0;
  private ended = false;
  private idle: (() => void) | null = null;
  private endWaiters: Array<() => void> = [];

  constructor(
    private readonly loop: NativeRelayLoop,
    private readonly opts: NativeSessionOptions,
    private readonly pending: Buffer,
  ) {
    this.reader = new NativeStatementReader(opts.session);
  }

  /** Hands the sockets over (after the login's last bytes reached the client). */
  start(): void {
    const { client, upstream, upstreamReader } = this.opts;
    // Node stops reading both sockets now, in the tick the login ended, so no byte is read by both.
    stopReading(client);
    upstream.pause();
    // Whatever the server sent between the login and now goes first, in order.
    const early: Buffer[] = [];
    upstreamReader?.listen((chunk) => early.push(Buffer.from(chunk)));
    upstreamReader?.listen(null);
    // Node no longer reads either socket; errors on them now surface in the native relay.
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    const begin = (): void => {
      if (client.writableLength > 0) {
        // Bytes Node still has queued for the client (the login's last) leave before the relay writes.
        setTimeout(begin, 1);
        return;
      }
      this.id = this.loop.register(this.opts, this.pending, Buffer.concat(early), this);
      if (this.id === 0) this.finish('client_disconnect', 'the session could not be handed to the native relay', false);
    };
    begin();
  }

  /** @internal A record of this session from the native thread. */
  replay(kind: number, at: number, payload: Buffer): void {
    switch (kind) {
      case STATEMENT:
        this.loop.statements.records++;
        this.opts.onStatement(this.reader.read(at, payload));
        break;
      case STATEMENT_LINE:
        this.loop.statements.lines++;
        this.reader.wrote();
        this.opts.onStatementLine?.(payload);
        break;
      case IDLE:
        this.idle?.();
        break;
      case END:
        this.finish(REASONS[payload[0]!] ?? 'client_disconnect', payload.length > 2 ? payload.subarray(2).toString('utf8') : undefined, payload[1] === 1);
        break;
    }
  }

  get statements(): number {
    return this.reader.statements;
  }

  /** @internal The bookkeeping failed on one of this session's records: the relay is told to end it. */
  failed(detail: string): void {
    this.finish('protocol_error', detail, false);
  }

  /** No statement of a relay-only session is ever held. */
  cancelHeld(): boolean {
    return false;
  }

  end(reason: SessionEndReason): void {
    if (this.ended) return;
    if (this.id === 0) this.finish(reason, undefined, false);
    else this.loop.command('end', this.id, reason);
  }

  /** Reads nothing more from the client, lets what is in flight finish (up to `graceMs`), then ends with 57P01. */
  async shutdown(graceMs: number): Promise<void> {
    if (this.ended || this.id === 0) return;
    const ended = new Promise<void>((resolve) => this.endWaiters.push(resolve));
    const idle = new Promise<void>((resolve) => (this.idle = resolve));
    this.loop.command('drain', this.id);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([idle, ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    this.loop.command('end', this.id, 'agent_shutdown', shutdownFatal());
    await ended;
  }

  private finish(reason: SessionEndReason, detail: string | undefined, busy: boolean): void {
    if (this.ended) return;
    this.ended = true;
    // The native relay has closed its duplicates; Node's sockets close now.
    closeBoth(this.opts.client, this.opts.upstream);
    this.opts.onEnd(reason, detail, busy);
    for (const w of this.endWaiters.splice(0)) w();
  }
}
