/**
 * Loads and checks the single-file agent configuration. Every problem is
 * reported with the file, the path inside it and what is wrong, and all of
 * them at once, so an operator fixes the file in one pass.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { parseDocument } from 'yaml';
import { agentConfigSchema } from './schema.js';
import type { AgentConfig } from './types.js';

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

const ajv = new Ajv({ allErrors: true, strict: true, discriminator: true });
const validate = ajv.compile<AgentConfig>(agentConfigSchema);

function describe(err: { instancePath: string; message?: string; params: Record<string, unknown> }): string {
  const where = err.instancePath === '' ? '(top level)' : err.instancePath.slice(1).replace(/\//g, '.');
  if (typeof err.params.additionalProperty === 'string') return `${where}: unknown key "${err.params.additionalProperty}"`;
  if (typeof err.params.pattern === 'string' && err.params.pattern.startsWith('^(env:')) {
    return `${where}: secrets must be references (env:NAME or file:PATH), never literal values`;
  }
  if (Array.isArray(err.params.allowedValues)) return `${where}: must be one of ${err.params.allowedValues.join(', ')}`;
  return `${where}: ${err.message ?? 'invalid'}`;
}

/** Cross-field checks the schema cannot express. */
function semanticProblems(cfg: AgentConfig): string[] {
  const problems: string[] = [];
  const targets = new Set(cfg.targets.map((t) => t.name));
  const roles = new Set(cfg.roles.map((r) => r.name));
  const dup = (items: { name: string }[], kind: string): void => {
    const seen = new Set<string>();
    for (const { name } of items) {
      if (seen.has(name)) problems.push(`${kind}: duplicate name "${name}"`);
      seen.add(name);
    }
  };
  dup(cfg.listeners, 'listeners');
  dup(cfg.targets, 'targets');
  dup(cfg.roles, 'roles');
  cfg.listeners.forEach((l, i) => {
    if (!targets.has(l.target)) problems.push(`listeners.${i}.target: no target named "${l.target}"`);
    if (l.protocol !== 'ssh' && !l.tls && !l.allowPlaintext) {
      problems.push(`listeners.${i}: needs tls (certFile/keyFile) or allowPlaintext: true; tokens are never taken in cleartext otherwise`);
    }
  });
  cfg.roles.forEach((r, i) =>
    r.targets.forEach((t, j) => {
      if (!targets.has(t)) problems.push(`roles.${i}.targets.${j}: no target named "${t}"`);
    }),
  );
  cfg.identity.groupMappings.forEach((m, i) => {
    if (!roles.has(m.role)) problems.push(`identity.groupMappings.${i}.role: no role named "${m.role}"`);
  });
  cfg.targets.forEach((t, i) => {
    if (t.kind === 'postgres' && t.tls?.mode === 'verify-full' && !t.tls.caFile) problems.push(`targets.${i}.tls: verify-full needs caFile`);
  });
  return problems;
}

export function parseAgentConfig(text: string, file = '<inline>'): AgentConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(file, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`));
  }
  const value: unknown = doc.toJS();
  if (!validate(value)) {
    throw new ConfigError(file, (validate.errors ?? []).map(describe));
  }
  const problems = semanticProblems(value);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return value;
}

export function loadAgentConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parseAgentConfig(text, path.resolve(file));
}
