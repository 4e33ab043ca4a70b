/**
 * The control plane, wired: a watched config repository compiled commit by
 * commit (the last good bundle stays in force), the HTTP API and the git
 * webhook, and the gRPC AgentService that hands every good bundle, signed,
 * to the agents that dial in.
 */
import fs from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import { AgentRegistry } from './distribution/agent-registry.js';
import { Distribution, startDistributionServer } from './distribution/agent-service.js';
import { SigningKey } from './distribution/signing-key.js';
import { AuditChain } from './audit/hash-chain.js';
import { SessionQuery } from './audit/session-query.js';
import { Checkpointer } from './audit/checkpointer.js';
import { AuditRetention, DEFAULT_RETENTION, parseRetention } from './audit/retention.js';
import { startEmbeddedPostgres } from './db/embedded-postgres.js';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { TokenVerifier } from '../../agent/src/identity/index.js';
import type { OidcIssuerConfig } from '../../agent/src/config/types.js';
import { resolveSecret } from '../../agent/src/config/secrets.js';
import type { PolicyBundle } from '../../proto/src/index.js';
import { RepoSource, RepoWatcher, configCompiler, gitWebhook } from './gitops/index.js';
import { buildApi } from './api/server.js';
import type { AgentSummary } from './api/routes/agents.js';
import type { Capability } from './api/people-auth.js';
import metricsRoutes, { ControlPlaneMetrics } from './api/routes/metrics.js';

export interface ControlPlaneConfig {
  /**
   * PostgreSQL for agents, enrollment tokens and the audit log. Without one the control plane
   * runs an embedded PostgreSQL (PGlite) — for demos and single-node trials, not production.
   */
  databaseUrl?: string;
  /** Where the embedded database keeps its files (in memory when absent). */
  embeddedDataDir?: string;
  /** Schema holding the control plane's tables. */
  databaseSchema?: string;
  grpc: { address: string; port: number; tls?: { certFile: string; keyFile: string } };
  /** Ed25519 key that signs bundles (created on first start if missing). */
  signingKeyFile: string;
  repository: { path: string } | { url: string; tokenRef?: string; cacheDir?: string };
  branch: string;
  pollIntervalMs: number;
  /** Secret shared with GitHub/GitLab for webhook signatures (env:/file: reference). */
  webhookSecretRef?: string;
  http: { address: string; port: number };
  people: { issuers: OidcIssuerConfig[]; capabilities: Record<Capability, string[]> };
  audit?: {
    /** How often the log's head is signed when it has grown (default 60000 ms). */
    checkpointIntervalMs?: number;
    /** How long records are kept: "6y" (the default and the minimum), "7y", "2557d"; only exported segments are ever pruned. */
    retention?: string;
  };
}

export interface RunningControlPlane {
  api: FastifyInstance;
  audit: AuditChain;
  registry: AgentRegistry;
  distribution: Distribution;
  grpcPort: number;
  watcher: RepoWatcher<PolicyBundle>;
  port: number;
  /** Called with each new good bundle (gRPC distribution hooks in here). */
  onBundle(listener: (bundle: PolicyBundle) => void): void;
  stop(): Promise<void>;
}

export async function startControlPlane(
  config: ControlPlaneConfig,
  opts: { log: Logger; baseDir?: string },
): Promise<RunningControlPlane> {
  const baseDir = opts.baseDir ?? process.cwd();
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.embeddedDataDir ? path.resolve(baseDir, config.embeddedDataDir) : undefined);
  // The embedded database is one PostgreSQL session: one pooled connection keeps transactions whole.
  const pool = new pg.Pool(embedded ? { connectionString: embedded.url, max: 1 } : { connectionString: config.databaseUrl, max: 8 });
  const registry = new AgentRegistry(pool, config.databaseSchema ?? 'warden');
  await registry.migrate();
  const key = SigningKey.loadOrCreate(path.resolve(baseDir, config.signingKeyFile));
  const audit = new AuditChain(pool, config.databaseSchema ?? 'warden');
  await audit.migrate();
  const retentionMs = parseRetention(config.audit?.retention ?? DEFAULT_RETENTION);
  const checkpointer = new Checkpointer({
    chain: audit,
    privateKey: key.privateKey,
    intervalMs: config.audit?.checkpointIntervalMs ?? 60_000,
    log: opts.log,
    retention: { store: new AuditRetention(pool, config.databaseSchema ?? 'warden'), ms: retentionMs },
  });
  const distribution = new Distribution(registry, key, opts.log, 10, audit);
  const grpcServer = await startDistributionServer({
    address: config.grpc.address,
    port: config.grpc.port,
    distribution,
    ...(config.grpc.tls
      ? { tls: { cert: fs.readFileSync(path.resolve(baseDir, config.grpc.tls.certFile), 'utf8'), key: fs.readFileSync(path.resolve(baseDir, config.grpc.tls.keyFile), 'utf8') } }
      : {}),
  });
  const agents = async (): Promise<AgentSummary[]> => {
    const connected = new Set(distribution.connected);
    return (await registry.list()).map((a) => ({
      id: a.id,
      name: a.name,
      labels: a.labels,
      connected: connected.has(a.id),
      enrolledAt: a.enrolledAt.toISOString(),
      ...(a.appliedVersion ? { appliedVersion: a.appliedVersion } : {}),
      ...(a.lastSeenAt ? { lastSeenAt: a.lastSeenAt.toISOString() } : {}),
    }));
  };
  const source =
    'path' in config.repository
      ? new RepoSource({ kind: 'local', dir: path.resolve(baseDir, config.repository.path) })
      : new RepoSource({
          kind: 'remote',
          url: config.repository.url,
          branch: config.branch,
          ...(config.repository.tokenRef ? { token: resolveSecret(config.repository.tokenRef, baseDir) } : {}),
          cacheDir: config.repository.cacheDir ?? path.join(os.tmpdir(), 'warden-config-cache'),
        });
  const watcher = new RepoWatcher<PolicyBundle>({ source, branch: config.branch, intervalMs: config.pollIntervalMs, compile: configCompiler(), logger: opts.log });
  watcher.on('rejected', (attempt) => opts.log.error({ sha: attempt.sha, errors: attempt.diagnostics.length }, 'config commit rejected; the last good bundle stays in force'));
  const secret = config.webhookSecretRef ? resolveSecret(config.webhookSecretRef, baseDir) : undefined;

  const metrics = new ControlPlaneMetrics({ currentVersion: () => watcher.current?.sha, connectedAgents: () => distribution.connected.length });
  watcher.on('bundle', () => metrics.configApplied.inc());
  watcher.on('rejected', () => metrics.configRejected.inc());
  const api = await buildApi({
    logger: opts.log,
    people: { verifier: new TokenVerifier(config.people.issuers), capabilities: config.people.capabilities },
    health: { ready: () => watcher.current !== undefined },
    config: { current: () => watcher.current, lastAttempt: () => watcher.lastAttempt },
    agents: { list: agents },
    sessions: { query: new SessionQuery(pool, config.databaseSchema ?? 'warden') },
    audit: { chain: audit, publicKey: key.publicKey },
    register: async (app: FastifyInstance) => {
      await app.register(metricsRoutes, { metrics });
      if (secret) await app.register(gitWebhook, { secret, branch: config.branch, watcher });
    },
  });
  await api.listen({ host: config.http.address, port: config.http.port });
  // Every good commit goes to every agent, signed.
  watcher.on('bundle', (applied) => distribution.publish(applied.bundle));
  watcher.start();
  checkpointer.start();
  const addr = api.server.address();
  return {
    api,
    audit,
    registry,
    distribution,
    grpcPort: grpcServer.port,
    watcher,
    port: typeof addr === 'object' && addr ? addr.port : config.http.port,
    onBundle(listener) {
      watcher.on('bundle', (applied) => listener(applied.bundle));
      if (watcher.current) listener(watcher.current.bundle);
    },
    async stop() {
      watcher.stop();
      await api.close();
      await grpcServer.close();
      await checkpointer.stop().catch(() => undefined);
      await pool.end();
      await embedded?.stop();
    },
  };
}
