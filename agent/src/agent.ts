/**
 * Builds a running agent from a configuration: one engine per listener,
 * sharing the token verifier, the cancel registry and the recorder.
 * Used by main.ts, by tests and by benchmarks alike.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig, PostgresTargetConfig } from './config/types.js';
import { resolveSecret } from './config/secrets.js';
import { TokenVerifier } from './identity/index.js';
import { JsonlRecorder } from './audit/jsonl-recorder.js';
import type { SessionRecorder } from './audit/events.js';
import { CancelRegistry } from './engines/postgres/cancel.js';
import { PostgresEngine } from './engines/postgres/listener.js';
import type { UpstreamTarget } from './engines/postgres/upstream-connect.js';
import type { ProtocolEngine } from './engines/engine.js';
import { createLogger } from './log.js';
import { bundleFromConfig } from './config/to-bundle.js';
import { TargetPolicy } from './policy/target-policy.js';
import { CompiledPolicy } from './policy/compiled-policy.js';
import { connectCatalog, type CatalogConnection } from './policy/catalog-connection.js';
import { loadParser } from './sql/index.js';

export interface RunningAgent {
  engines: ProtocolEngine[];
  /** Bound address per listener name. */
  addresses: Map<string, { address: string; port: number }>;
  recorder: SessionRecorder;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Folder that relative paths in the config are taken from. */
  baseDir?: string;
  /** Name of the config file, for error messages. */
  configFile?: string;
  logger?: Logger;
  recorder?: SessionRecorder;
}

function resolveTarget(t: PostgresTargetConfig, baseDir: string): UpstreamTarget {
  const tls = t.tls ?? { mode: 'disable' as const };
  return {
    name: t.name,
    host: t.host,
    port: t.port,
    database: t.database,
    user: t.user,
    ...(t.password ? { password: resolveSecret(t.password, baseDir) } : {}),
    tls: {
      mode: tls.mode,
      ...(tls.caFile ? { ca: fs.readFileSync(path.resolve(baseDir, tls.caFile), 'utf8') } : {}),
      ...(tls.serverName ? { serverName: tls.serverName } : {}),
    },
    connectTimeoutMs: t.connectTimeoutMs ?? 10_000,
  };
}

export async function startAgent(config: AgentConfig, options: StartOptions = {}): Promise<RunningAgent> {
  const baseDir = options.baseDir ?? process.cwd();
  const log = options.logger ?? createLogger();
  const recorder = options.recorder ?? new JsonlRecorder(path.resolve(baseDir, config.recording.path));
  const verifier = new TokenVerifier(config.identity.issuers);
  const cancels = new CancelRegistry();
  const roles = new Map(config.roles.map((r) => [r.name, r]));
  const targets = new Map(config.targets.map((t) => [t.name, resolveTarget(t, baseDir)]));

  // Policy: compiled by the same compiler as the control plane's. Each target's catalog is read on
  // first use, so an agent starts (and keeps serving other targets) while a database is down.
  const bundle = (config.enforcement ?? 'policy') === 'policy' ? bundleFromConfig(config, options.configFile ?? 'agent config') : undefined;
  const catalogs: CatalogConnection[] = [];
  const policies = new Map<string, TargetPolicy>();
  const loading = new Map<string, Promise<TargetPolicy>>();
  const policyFor = (target: UpstreamTarget): Promise<TargetPolicy> => {
    const ready = policies.get(target.name);
    if (ready) return Promise.resolve(ready);
    let p = loading.get(target.name);
    if (!p) {
      p = (async () => {
        await loadParser();
        const catalog = await connectCatalog(target, log.child({ target: target.name }));
        catalogs.push(catalog);
        const policy = new TargetPolicy(bundle!, target.name, baseDir, catalog.catalog);
        policies.set(target.name, policy);
        return policy;
      })().finally(() => loading.delete(target.name));
      loading.set(target.name, p);
    }
    return p;
  };
  if (bundle) {
    // Strategies and keys are checked now: a broken policy stops the agent at start, not at a query.
    new CompiledPolicy(bundle, '*', baseDir);
    log.info({ version: bundle.version, roles: bundle.roles.length }, 'policy loaded');
  } else {
    log.warn('enforcement is relay-only: statements are relayed without inspection or masking');
  }

  const engines: ProtocolEngine[] = config.listeners.map((l) => {
    const target = targets.get(l.target)!;
    return new PostgresEngine({
      address: l.address,
      port: l.port,
      allowPlaintext: l.allowPlaintext ?? false,
      ...(l.tls
        ? {
            tls: {
              cert: fs.readFileSync(path.resolve(baseDir, l.tls.certFile), 'utf8'),
              key: fs.readFileSync(path.resolve(baseDir, l.tls.keyFile), 'utf8'),
            },
          }
        : {}),
      loginTimeoutMs: 30_000,
      session: {
        agentId: config.agent.id,
        listener: l.name,
        auth: { verifier, groupMappings: config.identity.groupMappings, roles, target: target.name },
        target,
        recorder,
        cancels,
        log: log.child({ listener: l.name }),
        maxMessageBytes: l.maxMessageBytes ?? 64 * 1024 * 1024,
        ...(bundle
          ? {
              preparePolicy: async (role: string) => (await policyFor(target)).forRole(role),
              bundleVersion: () => bundle.version,
              onDdl: () => void catalogs.find((c) => c.target === target.name)?.refresh(),
            }
          : {}),
      },
    });
  });

  const addresses = new Map<string, { address: string; port: number }>();
  try {
    for (const engine of engines) addresses.set(engine.name, await engine.start());
  } catch (err) {
    await Promise.all(engines.map((e) => e.stop()));
    await Promise.all(catalogs.map((c) => c.close()));
    throw err;
  }
  log.info({ listeners: Object.fromEntries(addresses) }, 'agent started');

  return {
    engines,
    addresses,
    recorder,
    async stop() {
      await Promise.all(engines.map((e) => e.stop()));
      await Promise.all(catalogs.map((c) => c.close()));
      await recorder.flush().catch(() => undefined);
      await recorder.close();
    },
  };
}
