#!/usr/bin/env node
/**
 * warden-control-plane: wiring only. `warden-control-plane --config control-plane.yaml`
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { createLogger } from '../../agent/src/log.js';
import { startControlPlane, type ControlPlaneConfig } from './control-plane.js';

const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
if (values.help || !values.config) {
  process.stdout.write(`usage: warden-control-plane --config <control-plane.yaml>

Watches the config repository, compiles each commit, keeps the last good
bundle, serves the API (OpenAPI at /openapi.json) and hands signed bundles to
agents over gRPC.

example config:
  databaseUrl: postgres://warden@db/warden      # omit to run on an embedded PostgreSQL (PGlite)
  repository: { url: https://git.example.org/platform/warden-config.git, tokenRef: env:GIT_TOKEN }
  branch: main
  pollIntervalMs: 30000
  webhookSecretRef: env:WARDEN_WEBHOOK_SECRET
  http: { address: 0.0.0.0, port: 8080 }
  grpc: { address: 0.0.0.0, port: 7443, tls: { certFile: /etc/warden/tls.crt, keyFile: /etc/warden/tls.key } }
  signingKeyFile: /var/lib/warden/signing.key
  people:
    issuers: [{ issuer: https://idp.example.org/realms/hospital, audience: warden-api }]
    capabilities: { admin: [platform-admins], approver: [privacy-officers], auditor: [compliance] }
`);
  process.exit(values.help ? 0 : 2);
}

const log = createLogger(undefined, { name: 'warden-control-plane' });
const file = path.resolve(values.config);
const config = parse(fs.readFileSync(file, 'utf8')) as ControlPlaneConfig;
for (const key of ['repository', 'branch', 'http', 'grpc', 'signingKeyFile', 'people'] as const) {
  if (config[key] === undefined) {
    process.stderr.write(`${file}: "${key}" is required\n`);
    process.exit(2);
  }
}
const cp = await startControlPlane({ ...config, pollIntervalMs: config.pollIntervalMs ?? 30_000 }, { log, baseDir: path.dirname(file) }).catch((err: unknown) => {
  // One clear line (e.g. a database newer than this control plane), no stack trace.
  log.fatal({ err: (err as Error).message }, 'control plane failed to start');
  process.stderr.write(`warden-control-plane: ${(err as Error).message}\n`);
  process.exit(1);
});
log.info({ http: cp.port, grpc: cp.grpcPort }, 'control plane started');
let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down: API and gRPC close, agents reconnect to another replica');
  cp.stop().then(
    () => {
      log.info('control plane stopped');
      process.exit(0);
    },
    (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
