/**
 * The agent's operations endpoint, for orchestrators and Prometheus:
 *   GET /healthz  200 while the process serves requests (liveness)
 *   GET /readyz   200 once a bundle is enforced, sessions can be recorded and every upstream
 *                 the listeners forward to accepts the agent's login; 503 with the reason otherwise
 *   GET /metrics  Prometheus text exposition
 * Plain node:http: the agent carries no web framework, and these three answers need none.
 * It binds to its own address so it can stay off the network clients reach.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Logger } from 'pino';
import type { AgentMetrics } from './metrics.js';
import { connectUpstream, type UpstreamTarget } from '../engines/postgres/upstream-connect.js';
import type { RunningAgent } from '../agent.js';

export interface OpsServerOptions {
  address: string;
  port: number;
  metrics: AgentMetrics;
  /** Resolves with null when ready, else with why not. */
  readiness(): Promise<string | null>;
  log: Logger;
}

export interface OpsServer {
  address: string;
  port: number;
  close(): Promise<void>;
}

/** The agent whose readiness is checked; null while no bundle is enforced (a managed agent before its first bundle). */
export type ReadinessSource = () => Pick<RunningAgent, 'stopping' | 'recorder' | 'upstreams'> | null;

/** Logs in to the upstream with the agent's own credentials, then says goodbye (Terminate). */
async function probeUpstream(target: UpstreamTarget): Promise<void> {
  const conn = await connectUpstream(target, { application_name: 'warden-readiness' });
  conn.socket.end(Buffer.from([0x58, 0, 0, 0, 4]));
  conn.socket.destroySoon?.();
}

/**
 * Readiness of an agent. Concurrent probes share one check, so a burst of scrapes costs one
 * upstream login per target, not one each.
 */
export function agentReadiness(source: ReadinessSource): () => Promise<string | null> {
  let inFlight: Promise<string | null> | null = null;
  const check = async (): Promise<string | null> => {
    const agent = source();
    if (!agent) return 'no policy bundle yet';
    if (agent.stopping) return 'shutting down';
    if (!agent.recorder.healthy) return 'sessions cannot be recorded';
    const failures = await Promise.all(
      agent.upstreams().map((t) => probeUpstream(t).then(
        () => null,
        (err: unknown) => `upstream ${t.name}: ${(err as Error).message}`,
      )),
    );
    return failures.find((f) => f !== null) ?? null;
  };
  return () => {
    inFlight ??= check().finally(() => {
      inFlight = null;
    });
    return inFlight;
  };
}

export async function startOpsServer(opts: OpsServerOptions): Promise<OpsServer> {
  const reply = (res: http.ServerResponse, status: number, body: string, type = 'application/json'): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, JSON.stringify({ error: 'use GET' }));
    switch (path) {
      case '/healthz':
        return reply(res, 200, JSON.stringify({ status: 'ok' }));
      case '/readyz':
        opts.readiness().then(
          (why) => reply(res, why ? 503 : 200, JSON.stringify({ status: why ?? 'ready' })),
          (err: unknown) => reply(res, 503, JSON.stringify({ status: `readiness check failed: ${(err as Error).message}` })),
        );
        return;
      case '/metrics':
        opts.metrics.registry.metrics().then(
          (text) => reply(res, 200, text, opts.metrics.registry.contentType),
          (err: unknown) => {
            opts.log.error({ err: (err as Error).message }, 'metrics collection failed');
            reply(res, 500, JSON.stringify({ error: 'metrics collection failed' }));
          },
        );
        return;
      default:
        return reply(res, 404, JSON.stringify({ error: 'not found', routes: ['/healthz', '/readyz', '/metrics'] }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => resolve());
  });
  const addr = server.address() as net.AddressInfo;
  opts.log.info({ address: addr.address, port: addr.port }, 'ops endpoint listening (/healthz, /readyz, /metrics)');
  return {
    address: addr.address,
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
