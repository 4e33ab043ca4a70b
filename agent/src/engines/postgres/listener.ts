/**
 * Accepts PostgreSQL clients: the startup phase (SSLRequest → TLS or 'N',
 * GSSENCRequest → 'N', CancelRequest, StartupMessage), then hands the
 * session to session.ts. Implements the engine interface shared by all
 * protocol engines.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { decodeStartupPacket, negotiateProtocolVersion } from './wire/startup.js';
import { HandshakeError, HandshakeReader } from './wire/handshake-reader.js';
import { backend } from './wire/backend-messages.js';
import { runSession, type LiveSession, type SessionContext } from './session.js';
import { listenOn, type ProtocolEngine } from '../engine.js';
import type { CancelRegistry } from './cancel.js';

export interface PostgresListenerOptions {
  address: string;
  port: number;
  allowPlaintext: boolean;
  tls?: { cert: string; key: string };
  /** Whole login (TLS, startup, token) must finish within this. */
  loginTimeoutMs: number;
  /** Listener name, for logs and records. */
  name: string;
  log: Logger;
  cancels: CancelRegistry;
  /**
   * The session context in force now (identity, target, policy of the current bundle). Read once
   * per connection: a session keeps the bundle it started with.
   */
  session: () => Omit<SessionContext, 'track'>;
}

export class PostgresEngine implements ProtocolEngine {
  readonly protocol = 'postgres';
  private server: net.Server | null = null;
  private readonly live = new Set<LiveSession>();
  /** Connections still logging in (no session yet): shutdown closes them. */
  private readonly loggingIn = new Set<net.Socket>();
  private stopping = false;
  private readonly secureContext: tls.SecureContext | null;
  private readonly log: Logger;

  constructor(private readonly opts: PostgresListenerOptions) {
    this.secureContext = opts.tls ? tls.createSecureContext({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }) : null;
    this.log = opts.log;
  }

  get name(): string {
    return this.opts.name;
  }

  get activeSessions(): number {
    return this.live.size;
  }

  async start(): Promise<{ address: string; port: number }> {
    const server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    return listenOn(server, this.opts.port, this.opts.address);
  }

  async stop(graceMs = 0): Promise<void> {
    const server = this.server;
    this.server = null;
    this.stopping = true;
    // Stop accepting first; close() resolves once every connection is gone.
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const raw of this.loggingIn) raw.destroy();
    await Promise.all([...this.live].map((s) => s.shutdown(graceMs)));
    await closed;
  }

  private accept(raw: net.Socket): void {
    const clientAddress = `${raw.remoteAddress ?? '?'}:${raw.remotePort ?? '?'}`;
    raw.on('error', () => raw.destroy());
    if (this.stopping) return void raw.destroy();
    this.loggingIn.add(raw);
    const timer = setTimeout(() => {
      raw.end(backend.errorResponse({ severity: 'FATAL', code: '08006', message: 'login timed out' }));
      raw.destroy();
    }, this.opts.loginTimeoutMs);
    this.startup(raw, clientAddress)
      .catch((err: unknown) => {
        const e = err as HandshakeError;
        this.log.debug({ client: clientAddress, err: e.message }, 'startup refused');
        if (!raw.destroyed) {
          raw.end(backend.errorResponse({ severity: 'FATAL', code: e.sqlState ?? '08P01', message: e.message }));
        }
      })
      .finally(() => {
        clearTimeout(timer);
        this.loggingIn.delete(raw);
      });
  }

  private async startup(raw: net.Socket, clientAddress: string): Promise<void> {
    let socket: net.Socket = raw;
    let reader = new HandshakeReader(raw);
    let encrypted = false;
    for (;;) {
      const packet = decodeStartupPacket(await reader.startupPacket());
      switch (packet.kind) {
        case 'ssl': {
          if (!this.secureContext || encrypted) {
            socket.write('N');
            continue;
          }
          // Bytes pipelined after SSLRequest would arrive unencrypted but look trusted (CVE-2021-23214).
          if (reader.pendingBytes > 0) throw new HandshakeError('data received before the TLS handshake');
          reader.detach();
          socket.write('S');
          socket = await this.upgrade(raw);
          reader = new HandshakeReader(socket);
          encrypted = true;
          continue;
        }
        case 'gssenc':
          socket.write('N');
          continue;
        case 'cancel':
          reader.detach();
          socket.destroy();
          await this.opts.cancels.cancel(packet.processId, packet.secretKey);
          return;
        case 'startup': {
          if (!encrypted && !this.opts.allowPlaintext) {
            throw new HandshakeError(
              'this endpoint requires TLS: connect with sslmode=require (tokens are never accepted in cleartext)',
              '28000',
            );
          }
          const unsupported = [...packet.params.keys()].filter((k) => k.startsWith('_pq_.'));
          if (packet.minor > 0 || unsupported.length > 0) socket.write(negotiateProtocolVersion(unsupported));
          const ctx: SessionContext = {
            ...this.opts.session(),
            track: (session) => {
              // A login that finished while the agent was stopping is ended at once.
              if (this.stopping) setImmediate(() => void session.shutdown(0));
              else this.live.add(session);
              return () => this.live.delete(session);
            },
          };
          await runSession(ctx, { socket, reader, params: packet.params, tls: encrypted, clientAddress });
          return;
        }
      }
    }
  }

  private upgrade(raw: net.Socket): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.secureContext! });
      secure.once('secure', () => resolve(secure));
      secure.once('error', (err) => reject(new HandshakeError(`TLS handshake failed: ${err.message}`)));
    });
  }
}
