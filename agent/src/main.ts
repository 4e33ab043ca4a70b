#!/usr/bin/env node
/**
 * warden-agent: wiring only. `warden-agent --config agent.yaml`
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadAgentConfig, ConfigError } from './config/load.js';
import { startAgent } from './agent.js';
import { createLogger } from './log.js';

const { values } = parseArgs({
  options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
});

if (values.help || !values.config) {
  process.stdout.write(`usage: warden-agent --config <agent.yaml>

Runs a Warden agent: PostgreSQL clients connect to its listeners with an OIDC
token as password; the agent verifies it, maps groups to a role and proxies to
the configured upstream with its own credentials.

example:
  warden-agent --config deploy/examples/agent.yaml
`);
  process.exit(values.help ? 0 : 2);
}

const log = createLogger();
try {
  const file = values.config;
  const config = loadAgentConfig(file);
  const agent = await startAgent(config, { baseDir: path.dirname(path.resolve(file)), logger: log, configFile: path.resolve(file) });
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    agent.stop().then(
      () => process.exit(0),
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
  throw err;
}
