#!/usr/bin/env node
/**
 * warden-agent: wiring only.
 *   single-file mode:  warden-agent --config agent.yaml
 *   managed mode:      warden-agent --control-plane host:port --state-dir DIR [--enroll-token env:NAME --name N --label k=v]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { loadAgentConfig, ConfigError } from './config/load.js';
import { resolveSecret } from './config/secrets.js';
import { startAgent } from './agent.js';
import { startManagedAgent } from './control/managed-agent.js';
import { createLogger } from './log.js';
import { AgentMetrics } from './ops/metrics.js';
import { agentReadiness, startOpsServer, type OpsServer } from './ops/ops-server.js';
import type { RunningAgent } from './agent.js';

const { values } = parseArgs({
  options: {
    config: { type: 'string', short: 'c' },
    'control-plane': { type: 'string' },
    'state-dir': { type: 'string' },
    'enroll-token': { type: 'string' },
    name: { type: 'string' },
    label: { type: 'string', multiple: true },
    'ca-file': { type: 'string' },
    insecure: { type: 'boolean' },
    ops: { type: 'string' },
    'shutdown-grace': { type: 'string' },
    'sample-rows': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

const usage = `usage:
  warden-agent --config <agent.yaml>
  warden-agent --control-plane <host:port> --state-dir <dir> [--ca-file ca.pem | --insecure]
               [--enroll-token env:NAME|file:PATH --name <agent-name> --label key=value ...]
  common:      [--ops <address:port>]      /healthz, /readyz, /metrics (config: ops: { address, port })
               [--shutdown-grace <secs>]   on SIGTERM, time for statements in flight (config: shutdown.graceSeconds; default 25)
               [--sample-rows N]   result rows kept per statement in session records (default 20, 0 = none)

Runs a Warden agent. PostgreSQL clients connect to its listeners with an OIDC
token as password; the agent verifies it, maps groups to a role, enforces the
role's policy on every statement and proxies to the upstream with its own
credentials. In managed mode the agent dials out to the control plane, enrolls
once with a token, and enforces the signed bundles it receives.

examples:
  warden-agent --config deploy/examples/agent.yaml
  WARDEN_ENROLL=... warden-agent --control-plane cp.internal:7443 --ca-file ca.pem \\
      --state-dir /var/lib/warden --enroll-token env:WARDEN_ENROLL --name db-east-1 --label site=east --ops 0.0.0.0:9090
`;

if (values.help || (!values.config && !values['control-plane'])) {
  process.stdout.write(usage);
  process.exit(values.help ? 0 : 2);
}

function sampleRows(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 10000) throw new ConfigError('command line', ['--sample-rows must be an integer from 0 to 10000']);
  return n;
}

const log = createLogger();
const metrics = new AgentMetrics();
/** `address:port` (the last colon splits, so IPv6 literals work). */
function hostPort(flag: string, value: string): { address: string; port: number } {
  const i = value.lastIndexOf(':');
  const port = Number(value.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('command line', [`${flag}: expected address:port, got "${value}"`]);
  return { address: value.slice(0, i).replace(/^\[|\]$/g, ''), port };
}
try {
  let stop: (graceMs: number) => Promise<void>;
  let running: () => RunningAgent | null;
  let opsAddress = values.ops ? hostPort('--ops', values.ops) : undefined;
  let graceSeconds = values['shutdown-grace'] !== undefined ? Number(values['shutdown-grace']) : undefined;
  if (graceSeconds !== undefined && !(graceSeconds >= 0)) throw new ConfigError('command line', ['--shutdown-grace: expected seconds (0 or more)']);
  if (values.config) {
    const file = values.config;
    const config = loadAgentConfig(file);
    opsAddress ??= config.ops;
    graceSeconds ??= config.shutdown?.graceSeconds;
    const agent = await startAgent(config, { baseDir: path.dirname(path.resolve(file)), logger: log, configFile: path.resolve(file), metrics });
    stop = (graceMs) => agent.stop(graceMs);
    running = () => agent;
  } else {
    const stateDir = values['state-dir'];
    if (!stateDir) throw new ConfigError('command line', ['--state-dir is required in managed mode']);
    const credentials = values.insecure
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(values['ca-file'] ? fs.readFileSync(values['ca-file']) : null);
    const labels = Object.fromEntries((values.label ?? []).map((l) => l.split('=', 2) as [string, string]));
    const managed = await startManagedAgent({
      address: values['control-plane']!,
      credentials,
      stateDir,
      log,
      recordingPath: path.join(stateDir, 'sessions.jsonl'),
      metrics,
      ...(values['sample-rows'] !== undefined ? { results: { sampleRows: sampleRows(values['sample-rows']), hash: true } } : {}),
      ...(values['enroll-token'] ? { enrollment: { token: resolveSecret(values['enroll-token']), name: values.name ?? 'agent', labels } } : {}),
    });
    stop = (graceMs) => managed.stop(graceMs);
    running = () => managed.agent;
  }
  let ops: OpsServer | undefined;
  if (opsAddress) {
    ops = await startOpsServer({ ...opsAddress, metrics, readiness: agentReadiness(running), log });
  }
  const graceMs = (graceSeconds ?? 25) * 1000;
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs }, 'shutting down: no new sessions; statements in flight may finish');
    // The ops endpoint stays up meanwhile: /readyz answers 503 so load balancers stop sending clients.
    stop(graceMs).then(
      async () => {
        await ops?.close();
        log.info('stopped; session records flushed');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(err.message + '\n');
    process.exit(2);
  }
  process.stderr.write(`warden-agent: ${(err as Error).message}\n`);
  process.exit(1);
}
