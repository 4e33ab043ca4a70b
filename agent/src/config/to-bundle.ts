/**
 * Single-file mode: the agent's own YAML is turned into the config
 * repository's documents and compiled by the very compiler the control
 * plane uses, so a policy means the same thing in both modes. The bundle
 * version is the SHA-1 of the file's canonical JSON (there is no commit).
 */
import { createHash } from 'node:crypto';
import { compileBundle, type ConfigDocument, type Diagnostic } from '../../../control-plane/src/config/index.js';
import type { PolicyBundle } from '../../../proto/src/index.js';
import type { AgentConfig, TargetConfig } from './types.js';
import { ConfigError } from './load.js';

function doc(kind: string, spec: unknown, file: string, index: number): ConfigDocument {
  return { apiVersion: 'warden.dev/v1', kind, spec, file, index, line: 1 };
}

/** The file's flat target entry as the config repository's Target spec. */
function targetSpec(t: TargetConfig): unknown {
  switch (t.kind) {
    case 'http':
      return {
        name: t.name,
        http: {
          baseUrl: t.baseUrl,
          ...(t.authorization ? { authorizationRef: t.authorization } : {}),
          ...(t.caFile ? { caFile: t.caFile } : {}),
          ...(t.maxMaskBodyBytes ? { maxMaskBodyBytes: t.maxMaskBodyBytes } : {}),
          ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}),
        },
      };
    case 'ssh':
      return {
        name: t.name,
        ssh: {
          host: t.host,
          ...(t.port ? { port: t.port } : {}),
          user: t.user,
          privateKeyRef: t.privateKey,
          hostKeys: t.hostKeys,
          ...(t.connectTimeoutMs ? { connectTimeoutMs: t.connectTimeoutMs } : {}),
        },
      };
    case 'postgres':
      return {
        name: t.name,
        postgres: {
          host: t.host,
          port: t.port,
          database: t.database,
          user: t.user,
          ...(t.password ? { passwordRef: t.password } : {}),
          tls: t.tls ?? { mode: 'disable' },
          ...(t.connectTimeoutMs ? { connectTimeoutMs: t.connectTimeoutMs } : {}),
        },
      };
  }
}

export function configDocuments(cfg: AgentConfig, file: string): ConfigDocument[] {
  const docs: ConfigDocument[] = [];
  let i = 0;
  for (const t of cfg.targets) docs.push(doc('Target', targetSpec(t), file, i++));
  for (const l of cfg.listeners) {
    const { name, target, address, port, protocol, ...settings } = l;
    docs.push(doc('Listener', { name, target, address, port, [protocol]: settings }, file, i++));
  }
  docs.push(
    doc('Identity', {
      issuers: cfg.identity.issuers.map(({ audience, ...rest }) => ({ ...rest, audiences: Array.isArray(audience) ? audience : [audience] })),
      groupMappings: cfg.identity.groupMappings,
    }, file, i++),
  );
  for (const r of cfg.roles) docs.push(doc('Role', { tables: [], ...r }, file, i++));
  if (cfg.classification && cfg.classification.length > 0) docs.push(doc('Classification', { rules: cfg.classification }, file, i++));
  for (const m of cfg.masking ?? []) docs.push(doc('MaskingStrategy', m, file, i++));
  return docs;
}

function describe(d: Diagnostic): string {
  return `${d.path ? d.path + ': ' : ''}${d.message} [${d.code}]`;
}

/** Compiles the file's policy; any error is a ConfigError naming where (never a partial policy). */
export function bundleFromConfig(cfg: AgentConfig, file: string): PolicyBundle {
  const sha = createHash('sha1').update(JSON.stringify(cfg)).digest('hex');
  const { bundle, diagnostics } = compileBundle(configDocuments(cfg, file), {
    sha,
    author: { name: 'single-file', email: 'agent@localhost' },
    committer: { name: 'single-file', email: 'agent@localhost' },
    message: `single-file configuration ${file}`,
    committedAt: new Date(),
  });
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (!bundle || errors.length > 0) throw new ConfigError(file, errors.map(describe));
  return bundle;
}
