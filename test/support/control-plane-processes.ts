/**
 * The control plane and managed agents as separate OS processes, as they
 * run in production, for the process tests and the fleet benchmark: a small
 * config repository over a PHI table, the control plane's config file, a
 * GitHub-signed push webhook and the admin API for enrollment tokens.
 */
import { createHmac, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { AGENT_NODE_OPTIONS, entryCommand, spawnLogged, type LoggedProcess } from './processes.js';
import { services } from './services.js';

export type RunMode = 'tsx' | 'dist';

export interface PhiRepoOptions {
  /** Schema of the PHI tables in the test database (patients: id, name, ssn; secrets: id, note). */
  phiSchema: string;
  issuer: string;
  listenerPort: number;
  /** How analytics sees patients.ssn: a masking strategy (default redact). */
  ssnMask?: string;
  maxRows?: number;
  /** Also grant the secrets table (which the repository's policy test forbids). */
  grantSecrets?: boolean;
}

export const ANALYTICS_GROUP = 'ai-analytics';

/** A complete config repository (path → text) whose policy tests pass. */
export function phiConfigRepo(o: PhiRepoOptions): Record<string, string> {
  const s = o.phiSchema;
  const pg = services.postgres;
  const doc = (kind: string, spec: unknown): string => stringify({ apiVersion: 'warden.dev/v1', kind, spec });
  return {
    'targets.yaml': doc('Target', { name: 'clinical', postgres: { host: pg.host, port: pg.port, database: pg.database, user: pg.user } }),
    'listeners.yaml': doc('Listener', { name: 'clinical-pg', target: 'clinical', address: '127.0.0.1', port: o.listenerPort, postgres: { allowPlaintext: true } }),
    'identity.yaml': doc('Identity', { issuers: [{ issuer: o.issuer, audience: 'warden' }], groupMappings: [{ group: ANALYTICS_GROUP, role: 'analytics' }] }),
    'classification.yaml': doc('Classification', {
      rules: [
        { pattern: `${s}.patients.name`, phiClass: 'direct-identifier', defaultMask: { strategy: 'redact' } },
        { pattern: `${s}.patients.ssn`, phiClass: 'direct-identifier', defaultMask: { strategy: 'redact' } },
      ],
    }),
    'roles/analytics.yaml': doc('Role', {
      name: 'analytics',
      targets: ['clinical'],
      ...(o.maxRows ? { maxRows: o.maxRows } : {}),
      tables: [
        {
          table: `${s}.patients`,
          defaultAction: 'allow',
          columns: [
            { column: 'name', action: 'mask', mask: { strategy: 'redact' } },
            { column: 'ssn', action: 'mask', mask: { strategy: o.ssnMask ?? 'redact' } },
          ],
        },
        ...(o.grantSecrets ? [{ table: `${s}.secrets`, defaultAction: 'allow' }] : []),
      ],
    }),
    'tests/analytics.yaml': [
      doc('PolicyTest', { name: 'analytics sees names and SSNs masked', identity: { subject: 'bot', groups: [ANALYTICS_GROUP] }, target: 'clinical', sql: `SELECT id, name, ssn FROM ${s}.patients`, expect: { decision: 'mask', maskedColumns: ['name', 'ssn'] } }),
      doc('PolicyTest', { name: 'analytics cannot read secrets', identity: { subject: 'bot', groups: [ANALYTICS_GROUP] }, target: 'clinical', sql: `SELECT note FROM ${s}.secrets`, expect: { decision: 'deny' } }),
    ].join('---\n'),
    'catalog/clinical.json': JSON.stringify({ relations: { [`${s}.patients`]: ['id', 'name', 'ssn'], [`${s}.secrets`]: ['id', 'note'] } }, null, 2),
  };
}

export const PHI_ROWS = [
  { id: 1, name: 'Ottoline Quarrie', ssn: '123-45-6789' },
  { id: 2, name: 'Brannoch Vasey', ssn: '987-65-4321' },
];

export function phiSchemaSql(schema: string): string {
  return `CREATE SCHEMA "${schema}";
    CREATE TABLE "${schema}".patients (id int PRIMARY KEY, name text, ssn text);
    CREATE TABLE "${schema}".secrets (id int PRIMARY KEY, note text);
    INSERT INTO "${schema}".patients VALUES ${PHI_ROWS.map((r) => `(${r.id}, '${r.name}', '${r.ssn}')`).join(', ')};
    INSERT INTO "${schema}".secrets VALUES (1, 'launch codes');`;
}

export interface ControlPlaneProcessOptions {
  mode: RunMode;
  /** Holds control-plane.yaml and the signing key; keep it across restarts. */
  dir: string;
  repoDir: string;
  databaseSchema: string;
  issuer: string;
  webhookSecret: string;
  httpPort: number;
  grpcPort: number;
  tls?: { certFile: string; keyFile: string };
  logLevel?: string;
}

export interface ControlPlaneProcess extends LoggedProcess {
  http: number;
  grpc: number;
}

export function writeControlPlaneConfig(o: ControlPlaneProcessOptions): string {
  const pg = services.postgres;
  const file = path.join(o.dir, 'control-plane.yaml');
  fs.writeFileSync(
    file,
    stringify({
      databaseUrl: `postgres://${pg.user}@${pg.host}:${pg.port}/${pg.database}`,
      databaseSchema: o.databaseSchema,
      repository: { path: o.repoDir },
      branch: 'main',
      pollIntervalMs: 60_000,
      webhookSecretRef: 'env:WARDEN_WEBHOOK_SECRET',
      http: { address: '127.0.0.1', port: o.httpPort },
      grpc: { address: '127.0.0.1', port: o.grpcPort, ...(o.tls ? { tls: o.tls } : {}) },
      signingKeyFile: path.join(o.dir, 'signing.key'),
      people: { issuers: [{ issuer: o.issuer, audience: 'warden-api' }], capabilities: { admin: ['platform-admins'], approver: [], auditor: ['compliance'] } },
    }),
  );
  return file;
}

/** Starts `warden-control-plane --config …` and resolves once its API answers /healthz (whatever the log level). */
export async function startControlPlaneProcess(o: ControlPlaneProcessOptions): Promise<ControlPlaneProcess> {
  if (!o.httpPort || !o.grpcPort) throw new Error('give the control plane fixed ports (freePort()), so restarts keep them');
  const file = writeControlPlaneConfig(o);
  const proc = spawnLogged('control plane', [...entryCommand('control-plane/src/main.ts', o.mode), '--config', file], {
    WARDEN_WEBHOOK_SECRET: o.webhookSecret,
    WARDEN_LOG_LEVEL: o.logLevel ?? 'info',
  });
  let exit: number | null | undefined;
  void proc.exited.then((code) => (exit = code));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exit !== undefined) throw new Error(`control plane exited with ${exit}\n--- output ---\n${proc.output().slice(-4000)}`);
    if (Date.now() > deadline) {
      await proc.kill('SIGKILL');
      throw new Error(`control plane did not answer on ${o.httpPort} within 30 s\n--- output ---\n${proc.output().slice(-4000)}`);
    }
    const up = await fetch(`http://127.0.0.1:${o.httpPort}/healthz`).then((r) => r.ok, () => false);
    if (up) return Object.assign(proc, { http: o.httpPort, grpc: o.grpcPort });
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls /readyz until the control plane has a good bundle to hand out. */
export async function waitForReady(httpPort: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`control plane on ${httpPort} not ready after ${timeoutMs} ms`);
}

export interface ManagedAgentProcessOptions {
  mode: RunMode;
  name: string;
  stateDir: string;
  /** host:port of the control plane's gRPC service. */
  controlPlane: string;
  caFile?: string;
  token?: string;
  labels?: Record<string, string>;
  logLevel?: string;
}

/** Starts `warden-agent --control-plane …` (enrolling when a token is given), with the node options production uses. */
export function spawnManagedAgent(o: ManagedAgentProcessOptions): LoggedProcess {
  const args = ['--control-plane', o.controlPlane, '--state-dir', o.stateDir, '--name', o.name];
  args.push(...(o.caFile ? ['--ca-file', o.caFile] : ['--insecure']));
  if (o.token) args.push('--enroll-token', 'env:WARDEN_ENROLL');
  for (const [k, v] of Object.entries(o.labels ?? {})) args.push('--label', `${k}=${v}`);
  return spawnLogged(`agent ${o.name}`, [...entryCommand('agent/src/main.ts', o.mode, AGENT_NODE_OPTIONS), ...args], {
    ...(o.token ? { WARDEN_ENROLL: o.token } : {}),
    WARDEN_LOG_LEVEL: o.logLevel ?? 'info',
  });
}

/** A push event for `branch`, signed like GitHub's (X-Hub-Signature-256: HMAC-SHA256 of the body). */
export function pushWebhook(httpPort: number, secret: string, branch: string, after: string): Promise<Response> {
  const body = JSON.stringify({ ref: `refs/heads/${branch}`, after });
  return fetch(`http://127.0.0.1:${httpPort}/v1/hooks/git`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': 'sha256=' + createHmac('sha256', secret).update(body).digest('hex'),
    },
    body,
  });
}

/** GET a control-plane API path with a bearer token; throws on a non-2xx answer. */
export async function apiGet<T>(httpPort: number, route: string, bearer: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${httpPort}${route}`, { headers: { authorization: `Bearer ${bearer}` } });
  if (!res.ok) throw new Error(`GET ${route}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** POST /v1/enrollment-tokens as an admin. */
export async function issueEnrollmentToken(httpPort: number, bearer: string, body: { ttlSeconds?: number; reusable?: boolean; labels?: Record<string, string> } = {}): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/v1/enrollment-tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`POST /v1/enrollment-tokens: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

export interface AgentStatus {
  id: string;
  name: string;
  connected: boolean;
  appliedVersion?: string;
}

/** Polls GET /v1/agents until `ok` holds for the list; returns it. */
export async function waitForAgents(httpPort: number, bearer: () => Promise<string>, ok: (agents: AgentStatus[]) => boolean, timeoutMs = 20_000, everyMs = 50): Promise<AgentStatus[]> {
  const deadline = Date.now() + timeoutMs;
  let last: AgentStatus[] = [];
  while (Date.now() < deadline) {
    last = (await apiGet<{ agents: AgentStatus[] }>(httpPort, '/v1/agents', await bearer())).agents;
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`agents never reached the expected state; last: ${JSON.stringify(last)}`);
}
