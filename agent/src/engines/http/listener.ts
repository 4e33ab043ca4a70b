/**
 * Accept for HTTP: a node:http(s) server in front of one HTTP target. Each
 * request is handed to handleExchange (exchange.ts) with the bundle state in
 * force when it arrived. Plain HTTP is only served when the listener says
 * allowPlaintext (loopback development): bearer tokens otherwise travel in TLS only.
 */
import http from 'node:http';
import https from 'node:https';
import type { Logger } from 'pino';
import { listenOn, trackedContext, type ProtocolEngine } from '../engine.js';
import type { SessionEndReason } from '../../audit/events.js';
import { handleExchange, type HttpSessionContext } from './exchange.js';

export interface HttpListenerOptions {
  name: string;
  address: string;
  port: number;
  tls?: { cert: string; key: string };
  /** Without TLS the listener refuses to start unless this is set. */
  allowPlaintext: boolean;
  log: Logger;
  /** Called per request: the context it runs under (the bundle in force now). */
  session: () => Omit<HttpSessionContext, 'track'>;
}

export class HttpEngine implements ProtocolEngine {
  readonly protocol = 'http';
  private server: http.Server | null = null;
  private readonly live = new Set<(reason: SessionEndReason) => void>();

  constructor(private readonly opts: HttpListenerOptions) {
    if (!opts.tls && !opts.allowPlaintext) throw new Error(`listener ${opts.name}: needs tls or allowPlaintext`);
  }

  get name(): string {
    return this.opts.name;
  }

  get activeSessions(): number {
    return this.live.size;
  }

  async start(): Promise<{ address: string; port: number }> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
      let ctx: HttpSessionContext;
      try {
        ctx = trackedContext(this.opts.session(), this.live);
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message }, 'no session context');
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unavailable', message: (err as Error).message }));
        return;
      }
      handleExchange(ctx, req, res, this.opts.tls !== undefined).catch((err: unknown) => {
        this.opts.log.error({ err: (err as Error).message }, 'request failed unexpectedly');
        res.destroy();
      });
    };
    const server = this.opts.tls ? https.createServer({ cert: this.opts.tls.cert, key: this.opts.tls.key, minVersion: 'TLSv1.2' }, handler) : http.createServer(handler);
    // Held requests may wait minutes for an approver: no server-side request timeout.
    server.requestTimeout = 0;
    server.headersTimeout = 30_000;
    this.server = server;
    return listenOn(server, this.opts.port, this.opts.address);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const end of [...this.live]) end('agent_shutdown');
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}
