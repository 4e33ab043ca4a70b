/**
 * Accept for SSH: an ssh2 server with the agent's own host key, in front of
 * one SSH target. Each connection runs under the bundle in force when it
 * arrived (session.ts).
 */
import ssh2 from 'ssh2';
import type { Logger } from 'pino';
import { listenOn, trackedContext, type ProtocolEngine } from '../engine.js';
import type { SessionEndReason } from '../../audit/events.js';
import { runSshConnection, type SshSessionContext } from './session.js';

export interface SshListenerOptions {
  name: string;
  address: string;
  port: number;
  /** PEM/OpenSSH private host key. */
  hostKey: string;
  log: Logger;
  session: () => Omit<SshSessionContext, 'track'>;
}

export class SshEngine implements ProtocolEngine {
  readonly protocol = 'ssh';
  private server: ssh2.Server | null = null;
  private readonly live = new Set<(reason: SessionEndReason) => void>();
  /** Every connection, logged in or not, so stop() can end them all. */
  private readonly connections = new Set<ssh2.Connection>();

  constructor(private readonly opts: SshListenerOptions) {}

  get name(): string {
    return this.opts.name;
  }

  get activeSessions(): number {
    return this.live.size;
  }

  async start(): Promise<{ address: string; port: number }> {
    const server = new ssh2.Server({ hostKeys: [this.opts.hostKey], ident: 'Warden' }, (client, info) => {
      this.connections.add(client);
      client.on('close', () => this.connections.delete(client));
      let ctx: SshSessionContext;
      try {
        ctx = trackedContext(this.opts.session(), this.live);
      } catch (err) {
        this.opts.log.error({ err: (err as Error).message }, 'no session context');
        client.end();
        return;
      }
      runSshConnection(ctx, client, info);
    });
    server.on('error', (err: Error) => this.opts.log.warn({ err: err.message }, 'ssh server error'));
    this.server = server;
    return listenOn(server, this.opts.port, this.opts.address);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const end of [...this.live]) end('agent_shutdown');
    for (const c of [...this.connections]) c.end();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
