/**
 * The control plane, wired: a watched config repository compiled commit by
 * commit (the last good bundle stays in force), the HTTP API and the git
 * webhook. The gRPC distribution to agents attaches to `onBundle`.
 */
import os from 'node:os';
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

export interface ControlPlaneConfig {
  repository: { path: string } | { url: string; tokenRef?: string; cacheDir?: string };
  branch: string;
  pollIntervalMs: number;
  /** Secret shared with GitHub/GitLab for webhook signatures (env:/file: reference). */
  webhookSecretRef?: string;
  http: { address: string; port: number };
  people: { issuers: OidcIssuerConfig[]; capabilities: Record<Capability, string[]> };
}

export interface RunningControlPlane {
  api: FastifyInstance;
  watcher: RepoWatcher<PolicyBundle>;
  port: number;
  /** Called with each new good bundle (gRPC distribution hooks in here). */
  onBundle(listener: (bundle: PolicyBundle) => void): void;
  stop(): Promise<void>;
}

export async function startControlPlane(
  config: ControlPlaneConfig,
  opts: { log: Logger; baseDir?: string; agents?: () => Promise<AgentSummary[]> },
): Promise<RunningControlPlane> {
  const baseDir = opts.baseDir ?? process.cwd();
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

  const api = await buildApi({
    logger: opts.log,
    people: { verifier: new TokenVerifier(config.people.issuers), capabilities: config.people.capabilities },
    health: { ready: () => watcher.current !== undefined },
    config: { current: () => watcher.current, lastAttempt: () => watcher.lastAttempt },
    agents: { list: opts.agents ?? (async () => []) },
    ...(secret ? { register: async (app: FastifyInstance) => void (await app.register(gitWebhook, { secret, branch: config.branch, watcher })) } : {}),
  });
  await api.listen({ host: config.http.address, port: config.http.port });
  watcher.start();
  const addr = api.server.address();
  return {
    api,
    watcher,
    port: typeof addr === 'object' && addr ? addr.port : config.http.port,
    onBundle(listener) {
      watcher.on('bundle', (applied) => listener(applied.bundle));
      if (watcher.current) listener(watcher.current.bundle);
    },
    async stop() {
      watcher.stop();
      await api.close();
    },
  };
}
