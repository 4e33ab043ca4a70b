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
      },
    });
  });

  const addresses = new Map<string, { address: string; port: number }>();
  try {
    for (const engine of engines) addresses.set(engine.name, await engine.start());
  } catch (err) {
    await Promise.all(engines.map((e) => e.stop()));
    throw err;
  }
  log.info({ listeners: Object.fromEntries(addresses) }, 'agent started');

  return {
    engines,
    addresses,
    recorder,
    async stop() {
      await Promise.all(engines.map((e) => e.stop()));
      await recorder.flush().catch(() => undefined);
      await recorder.close();
    },
  };
}
