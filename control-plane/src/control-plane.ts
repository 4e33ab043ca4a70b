/**
 * The control plane, wired: a watched config repository compiled commit by
 * commit (the last good bundle stays in force), the HTTP API and the git
 * webhook, and the gRPC AgentService that hands every good bundle, signed,
 * to the agents that dial in.
 */
import fs from 'node:fs';
import type { KeyObject } from 'node:crypto';
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
import { migrateSchema } from './db/migrations.js';
import { BundleStore } from './gitops/bundle-store.js';
import { COMPILER_VERSION } from './config/index.js';
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
import approvalRoutes from './api/routes/approvals.js';
import keyRoutes from './api/routes/keys.js';
import { ApprovalStore } from './approvals/approval-store.js';
import { ApprovalService, type Approver } from './approvals/approval-service.js';
import { LocalApprovalBus, RedisApprovalBus, type ApprovalBus } from './approvals/approval-bus.js';
import { slackRoutes, startSlackNotifier } from './approvals/slack.js';
import enrollmentTokenRoutes from './api/routes/enrollment-tokens.js';
import evidenceRoutes from './api/routes/evidence.js';
import { collectEvidence } from './evidence/collect.js';

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
  approvals?: {
    /** Redis shared by the replicas (pub/sub of decisions, chat replay protection). Without it: one replica only. */
    redisUrl?: string;
    /** How often pending requests are checked for expiry (default 1 s). */
    sweepMs?: number;
    /** The chat bot (Slack-compatible). Secrets by env:/file: reference. */
    slack?: { webhookUrlRef: string; signingSecretRef: string; users: Record<string, Approver> };
  };
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
  approvals: ApprovalService;
  /** The control plane's Ed25519 public key (bundles, approval records; also at GET /v1/keys). */
  publicKey: KeyObject;
  grpcPort: number;
  watcher: RepoWatcher<PolicyBundle>;
  port: number;
  /** Prometheus metrics served at /metrics (approvals observe their wait here). */
  metrics: ControlPlaneMetrics;
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
  const schema = config.databaseSchema ?? 'warden';
  try {
    // Every replica runs this at start; the advisory lock inside makes them take turns.
    const migrated = await migrateSchema(pool, schema, { log: (m) => opts.log.info(m) });
    opts.log.info({ schema, version: migrated.version, applied: migrated.applied }, 'database schema current');
  } catch (err) {
    await pool.end();
    await embedded?.stop();
    throw err;
  }
  const registry = new AgentRegistry(pool, schema);
  const key = SigningKey.loadOrCreate(path.resolve(baseDir, config.signingKeyFile));
  const audit = new AuditChain(pool, schema, { bulkWrite: embedded ? 'insert' : 'copy' });
  const retentionMs = parseRetention(config.audit?.retention ?? DEFAULT_RETENTION);
  const checkpointer = new Checkpointer({
    chain: audit,
    privateKey: key.privateKey,
    intervalMs: config.audit?.checkpointIntervalMs ?? 60_000,
    log: opts.log,
    retention: { store: new AuditRetention(pool, schema), ms: retentionMs },
  });
  const distribution = new Distribution(registry, key, opts.log, 10, audit);
  const approvalStore = new ApprovalStore(pool, schema);
  const bus: ApprovalBus = config.approvals?.redisUrl ? await RedisApprovalBus.connect(config.approvals.redisUrl, schema) : new LocalApprovalBus();
  // Rules are read from the bundle in force when a request arrives and when someone votes.
  let currentBundle: PolicyBundle | undefined;
  const approvals = new ApprovalService({
    store: approvalStore,
    key,
    bus,
    log: opts.log,
    rule: (id) => currentBundle?.approvalRules.find((r) => r.id === id),
    ...(config.approvals?.sweepMs ? { sweepMs: config.approvals.sweepMs } : {}),
  });
  distribution.attachApprovals(approvals);
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
  // The last good bundle survives restarts: served at once, even while the branch tip is a rejected commit.
  const bundles = new BundleStore(pool, schema);
  const stored = await bundles.latest(COMPILER_VERSION);
  if (stored) {
    watcher.current = stored;
    currentBundle = stored.bundle;
    distribution.publish(stored.bundle);
    opts.log.info({ version: stored.sha }, 'serving the last good bundle from the database until the repository is read');
  }
  watcher.on('bundle', (applied) => void bundles.save(applied).catch((err: Error) => opts.log.error({ sha: applied.sha, err: err.message }, 'could not record the bundle in the database')));
  watcher.on('rejected', (attempt) => opts.log.error({ sha: attempt.sha, errors: attempt.diagnostics.length }, 'config commit rejected; the last good bundle stays in force'));
  watcher.on('bundle', (applied) => (currentBundle = applied.bundle));
  const secret = config.webhookSecretRef ? resolveSecret(config.webhookSecretRef, baseDir) : undefined;
  const slack = config.approvals?.slack
    ? { webhookUrl: resolveSecret(config.approvals.slack.webhookUrlRef, baseDir), signingSecret: resolveSecret(config.approvals.slack.signingSecretRef, baseDir), users: config.approvals.slack.users }
    : undefined;

  const metrics = new ControlPlaneMetrics({ currentVersion: () => watcher.current?.sha, connectedAgents: () => distribution.connected.length });
  approvals.on('closed', (_id, _state, seconds) => metrics.observeApprovalWait(seconds));
  watcher.on('bundle', () => metrics.configApplied.inc());
  watcher.on('rejected', () => metrics.configRejected.inc());
  const api = await buildApi({
    logger: opts.log,
    people: { verifier: new TokenVerifier(config.people.issuers), capabilities: config.people.capabilities },
    health: { ready: () => watcher.current !== undefined },
    config: { current: () => watcher.current, lastAttempt: () => watcher.lastAttempt, history: () => bundles.history() },
    agents: { list: agents },
    sessions: { query: new SessionQuery(pool, config.databaseSchema ?? 'warden') },
    audit: { chain: audit, publicKey: key.publicKey },
    register: async (app: FastifyInstance) => {
      await app.register(metricsRoutes, { metrics });
      await app.register(approvalRoutes, { service: approvals, store: approvalStore });
      await app.register(evidenceRoutes, { collect: (period) => collectEvidence({ pool, schema, publicKey: key.publicKey }, period) });
      await app.register(keyRoutes, { keys: [{ keyId: key.keyId, uses: ['bundles', 'approvals'], publicKey: key.publicKey }] });
      if (slack) await app.register(slackRoutes, { cfg: slack, service: approvals, bus, log: opts.log });
      await app.register(enrollmentTokenRoutes, { create: (o) => registry.createToken(o) });
      if (secret) await app.register(gitWebhook, { secret, branch: config.branch, watcher });
    },
  });
  await api.listen({ host: config.http.address, port: config.http.port });
  // Every good commit goes to every agent, signed.
  watcher.on('bundle', (applied) => distribution.publish(applied.bundle));
  watcher.start();
  approvals.start();
  if (slack) startSlackNotifier(approvals, slack, opts.log);
  checkpointer.start();
  const addr = api.server.address();
  return {
    api,
    audit,
    registry,
    distribution,
    approvals,
    publicKey: key.publicKey,
    grpcPort: grpcServer.port,
    watcher,
    metrics,
    port: typeof addr === 'object' && addr ? addr.port : config.http.port,
    onBundle(listener) {
      watcher.on('bundle', (applied) => listener(applied.bundle));
      if (watcher.current) listener(watcher.current.bundle);
    },
    async stop() {
      watcher.stop();
      approvals.stop();
      await api.close();
      await grpcServer.close();
      await bus.close();
      await checkpointer.stop().catch(() => undefined);
      await pool.end();
      await embedded?.stop();
    },
  };
}
