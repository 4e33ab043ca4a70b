/**
 * The agent's declarative configuration, as read from YAML (single-file mode)
 * and, later, as delivered by the control plane. The JSON Schema that checks it
 * lives beside this file (schema.ts); keep the two in step.
 */

/** A secret is never written in config: only a reference to where it lives. */
export type SecretRef = `env:${string}` | `file:${string}`;

export type JwtAlgorithm = 'RS256' | 'ES256' | 'EdDSA';

export interface OidcIssuerConfig {
  /** Exact `iss` value; discovery is read from `${issuer}/.well-known/openid-configuration`. */
  issuer: string;
  /** Accepted `aud` value(s). */
  audience: string | string[];
  /** Claim holding the caller's groups (dot path allowed, e.g. `realm_access.roles`). Default `groups`. */
  groupsClaim?: string;
  /** Pinned algorithms; default all of RS256, ES256, EdDSA. HS* and `none` are never accepted. */
  algorithms?: JwtAlgorithm[];
  /** Tolerated clock skew for exp/nbf/iat in seconds. Default 30, at most 300. */
  clockSkewSeconds?: number;
}

export interface GroupMapping {
  group: string;
  role: string;
}

export interface IdentityConfig {
  issuers: OidcIssuerConfig[];
  groupMappings: GroupMapping[];
}

export interface RoleConfig {
  name: string;
  /** Targets this role may connect to. */
  targets: string[];
  /**
   * The rest of a role is the config repository's Role spec (statementKinds,
   * maxRows, rowLimitAction, defaultAction, tables), checked by the shared
   * compiler (control-plane/src/config).
   */
  [policyField: string]: unknown;
}

export interface ListenerTlsConfig {
  certFile: string;
  keyFile: string;
}

export interface PostgresListenerConfig {
  name: string;
  protocol: 'postgres';
  address: string;
  port: number;
  target: string;
  /** Accept a cleartext token over a non-TLS connection (loopback development only). */
  allowPlaintext?: boolean;
  tls?: ListenerTlsConfig;
  /** Largest frontend message accepted, bytes. Default 64 MiB. */
  maxMessageBytes?: number;
}

export interface HttpListenerConfig {
  name: string;
  protocol: 'http';
  address: string;
  port: number;
  target: string;
  /** Accept bearer tokens over plain HTTP (loopback development only). */
  allowPlaintext?: boolean;
  tls?: ListenerTlsConfig;
  /** Largest request body accepted, bytes. Default 10 MiB. */
  maxRequestBytes?: number;
}

export interface SshListenerConfig {
  name: string;
  protocol: 'ssh';
  address: string;
  port: number;
  target: string;
  /** The agent's SSH host private key (clients pin its public key). */
  hostKeyFile: string;
}

export type ListenerConfig = PostgresListenerConfig | HttpListenerConfig | SshListenerConfig;

export interface HttpTargetConfig {
  name: string;
  kind: 'http';
  baseUrl: string;
  /** Authorization header value the agent sends upstream; the client's token never goes there. */
  authorization?: SecretRef;
  caFile?: string;
  /** Largest JSON body buffered for masking. Default 10 MiB. */
  maxMaskBodyBytes?: number;
  timeoutMs?: number;
}

export interface SshTargetConfig {
  name: string;
  kind: 'ssh';
  host: string;
  port?: number;
  user: string;
  /** The agent's private key for the host. */
  privateKey: SecretRef;
  /** The host's public keys ("ssh-ed25519 AAAA..."); any other key is refused. */
  hostKeys: string[];
  connectTimeoutMs?: number;
}

export type TargetConfig = PostgresTargetConfig | HttpTargetConfig | SshTargetConfig;

export type UpstreamTlsMode = 'disable' | 'require' | 'verify-full';

export interface PostgresTargetConfig {
  name: string;
  kind: 'postgres';
  host: string;
  port: number;
  database: string;
  user: string;
  password?: SecretRef;
  tls?: { mode: UpstreamTlsMode; caFile?: string; serverName?: string };
  /** Milliseconds to wait for the upstream TCP+auth handshake. Default 10000. */
  connectTimeoutMs?: number;
}

export interface RecordingConfig {
  kind: 'jsonl';
  path: string;
  /** Result rows kept per statement, masked as the client got them (default 20; 0 keeps none). */
  sampleRows?: number;
}

export interface AgentConfig {
  agent: { id: string };
  listeners: ListenerConfig[];
  targets: TargetConfig[];
  identity: IdentityConfig;
  roles: RoleConfig[];
  /** Classification rules (the Classification kind's `rules`). */
  classification?: unknown[];
  /** Masking strategies (MaskingStrategy kind specs). */
  masking?: unknown[];
  /**
   * `policy` (default): every statement is parsed and decided by the role's rules.
   * `relay-only`: no inspection at all — a plain authenticated proxy, for measurement and migration.
   */
  enforcement?: 'policy' | 'relay-only';
  recording: RecordingConfig;
  /** Health, readiness and Prometheus metrics over HTTP (off when absent). */
  ops?: OpsConfig;
  shutdown?: ShutdownConfig;
}

export interface OpsConfig {
  /** Keep it off the clients' network where possible, e.g. the pod IP or 127.0.0.1. */
  address: string;
  port: number;
}

export interface ShutdownConfig {
  /** On SIGTERM, how long statements in flight may take before their sessions are ended. Default 25. */
  graceSeconds: number;
}
