/**
 * Everything an agent enforces, built from one policy bundle: who may log in
 * (issuers, group → role), where each listener forwards (targets with their
 * secrets resolved), and each target's compiled policy. A new bundle builds
 * a new state and swaps it in atomically; a session keeps the state it
 * started with until it ends, so no statement is ever judged by half of one
 * bundle and half of another.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  JwtAlgorithm,
  PostgresTlsMode,
  type Listener,
  type PolicyBundle,
  type Target,
} from '../../proto/src/index.js';
import type { GroupMapping, JwtAlgorithm as JwtAlgorithmName, RoleConfig, UpstreamTlsMode } from './config/types.js';
import { resolveSecret } from './config/secrets.js';
import { TokenVerifier } from './identity/index.js';
import type { UpstreamTarget } from './engines/postgres/upstream-connect.js';
import { CompiledPolicy } from './policy/compiled-policy.js';
import { TargetPolicy, type SessionPolicy } from './policy/target-policy.js';
import type { CatalogPool } from './policy/catalog-connection.js';
import { ProtocolApprovalRules } from './policy/approval-rules.js';
import { resolveHttpTarget, type HttpUpstream } from './engines/http/forward.js';
import { HttpPolicy } from './engines/http/routes.js';
import { resolveSshTarget, type SshUpstream } from './engines/ssh/upstream.js';
import { SshPolicy } from './engines/ssh/decide.js';

const ALG: Record<number, JwtAlgorithmName | undefined> = { [JwtAlgorithm.RS256]: 'RS256', [JwtAlgorithm.ES256]: 'ES256', [JwtAlgorithm.EDDSA]: 'EdDSA' };
const TLS: Record<number, UpstreamTlsMode | undefined> = {
  [PostgresTlsMode.DISABLE]: 'disable',
  [PostgresTlsMode.REQUIRE]: 'require',
  [PostgresTlsMode.VERIFY_FULL]: 'verify-full',
};

export class BundleStateError extends Error {}

function resolveTarget(t: Target, baseDir: string): UpstreamTarget {
  if (t.kind.case !== 'postgres') throw new BundleStateError(`target ${t.name}: only postgres targets are supported`);
  const pg = t.kind.value;
  const mode = TLS[pg.tls?.mode ?? PostgresTlsMode.UNSPECIFIED];
  if (!mode) throw new BundleStateError(`target ${t.name}: TLS mode is not set`);
  return {
    name: t.name,
    host: pg.host,
    port: pg.port,
    database: pg.database,
    user: pg.user,
    ...(pg.passwordRef ? { password: resolveSecret(pg.passwordRef, baseDir) } : {}),
    tls: {
      mode,
      ...(pg.tls?.caFile ? { ca: fs.readFileSync(path.resolve(baseDir, pg.tls.caFile), 'utf8') } : {}),
      ...(pg.tls?.serverName ? { serverName: pg.tls.serverName } : {}),
    },
    connectTimeoutMs: pg.connectTimeoutMs || 10_000,
  };
}

/** Does this agent run the listener? Every selector entry must match one of its labels. */
export function selects(listener: Listener, labels: Record<string, string>): boolean {
  return Object.entries(listener.agentSelector).every(([k, v]) => labels[k] === v);
}

export class BundleState {
  readonly version: string;
  readonly verifier: TokenVerifier;
  readonly roles: Map<string, RoleConfig>;
  /** PostgreSQL targets. */
  readonly targets: Map<string, UpstreamTarget>;
  readonly httpTargets: Map<string, HttpUpstream>;
  /** Route rules and JSON field maskers of every role, for HTTP listeners. */
  readonly httpPolicy: HttpPolicy;
  readonly sshTargets: Map<string, SshUpstream>;
  readonly sshPolicy: SshPolicy;
  private readonly protocolApprovals = new Map<string, ProtocolApprovalRules>();
  readonly listeners: Listener[];
  private readonly policies = new Map<string, Promise<TargetPolicy>>();

  constructor(
    readonly bundle: PolicyBundle,
    private readonly opts: { baseDir: string; labels: Record<string, string>; relayOnly: boolean; catalogs: CatalogPool; log: Logger },
  ) {
    this.version = bundle.version;
    const identity = bundle.identity;
    if (!identity || identity.issuers.length === 0) throw new BundleStateError('bundle has no identity issuers');
    this.verifier = new TokenVerifier(
      identity.issuers.map((i) => ({
        issuer: i.issuer,
        audience: i.audiences,
        ...(i.groupsClaim ? { groupsClaim: i.groupsClaim } : {}),
        algorithms: i.algorithms.map((a) => ALG[a]).filter((a): a is JwtAlgorithmName => a !== undefined),
        clockSkewSeconds: i.clockSkewSeconds,
      })),
    );
    this.roles = new Map(bundle.roles.map((r) => [r.name, { name: r.name, targets: [...r.targets] }]));
    this.targets = new Map(bundle.targets.filter((t) => t.kind.case === 'postgres').map((t) => [t.name, resolveTarget(t, opts.baseDir)]));
    this.httpTargets = new Map(bundle.targets.filter((t) => t.kind.case === 'http').map((t) => [t.name, resolveHttpTarget(t, opts.baseDir)]));
    this.httpPolicy = new HttpPolicy(bundle, opts.baseDir);
    this.sshTargets = new Map(bundle.targets.filter((t) => t.kind.case === 'ssh').map((t) => [t.name, resolveSshTarget(t, opts.baseDir)]));
    this.sshPolicy = new SshPolicy(bundle);
    this.listeners = bundle.listeners.filter((l) => selects(l, opts.labels));
    // Strategies and keys are checked now: a broken policy is refused whole, never half-applied.
    if (!opts.relayOnly) new CompiledPolicy(bundle, '*', opts.baseDir);
  }

  /** Group mappings that apply to tokens from this issuer. */
  mappingsFor(issuer: string): GroupMapping[] {
    return (this.bundle.identity?.groupMappings ?? []).filter((m) => !m.issuer || m.issuer === issuer).map((m) => ({ group: m.group, role: m.role }));
  }

  get relayOnly(): boolean {
    return this.opts.relayOnly;
  }

  /** The role's policy on a target, once the target's catalog has been read (shared across bundles). */
  async policyFor(target: UpstreamTarget, role: string): Promise<SessionPolicy | null> {
    let p = this.policies.get(target.name);
    if (!p) {
      p = this.opts.catalogs.get(target).then((c) => new TargetPolicy(this.bundle, target.name, this.opts.baseDir, c.catalog));
      p.catch(() => this.policies.delete(target.name));
      this.policies.set(target.name, p);
    }
    return (await p).forRole(role);
  }

  /** Approval rules for an HTTP or SSH target (compiled once per bundle). */
  protocolApprovalsFor(target: string): ProtocolApprovalRules {
    let rules = this.protocolApprovals.get(target);
    if (!rules) this.protocolApprovals.set(target, (rules = new ProtocolApprovalRules(this.bundle, target)));
    return rules;
  }

  refreshCatalog(target: string): void {
    this.opts.catalogs.refresh(target);
  }
}
