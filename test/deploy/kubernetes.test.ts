/**
 * deploy/kubernetes checked as Kubernetes and Warden would see it: every
 * object valid against the Kubernetes API schema, the kinds and replicas
 * expected, probes on the routes and ports the code really serves, Services
 * and PodDisruptionBudgets selecting the pods, and every secret the configs
 * reference (env:/file:, certificates, keys) supplied from a Secret that
 * secrets.example.yaml documents.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Service } from 'kubernetes-models/v1/Service';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { DEPLOY, ROOT, flags, kustomize, readYamlDocs, secretReferences, type Obj } from './deploy-files.js';
import { buildApi } from '../../control-plane/src/api/server.js';
import metricsRoutes, { ControlPlaneMetrics } from '../../control-plane/src/api/routes/metrics.js';
import { TokenVerifier } from '../../agent/src/identity/index.js';
import { AgentMetrics } from '../../agent/src/ops/metrics.js';
import { startOpsServer } from '../../agent/src/ops/ops-server.js';
import { loadConfigDir } from '../../control-plane/src/config/index.js';

const run = promisify(execFile);
const K8S = path.join(DEPLOY, 'kubernetes');
const k = kustomize(K8S);
const secretsExample = readYamlDocs(path.join(K8S, 'secrets.example.yaml'));
const byKind = (kind: string): Obj[] => k.objects.filter((o) => o.kind === kind);
const deployment = (name: string): Obj => byKind('Deployment').find((d) => d.metadata.name === name)!;
const cpDeployment = deployment('warden-control-plane');
const agentDeployment = deployment('warden-agent-clinical');
const container = (d: Obj): Obj => d.spec.template.spec.containers[0];
const cpConfig = k.generatedConfigMaps.get('warden-control-plane-config')!.get('control-plane.yaml')!;

/** Container port number for a probe's named or numbered port. */
function portOf(c: Obj, port: string | number): number {
  if (typeof port === 'number') return port;
  const p = (c.ports as Obj[]).find((x) => x.name === port);
  if (!p) throw new Error(`container ${c.name} has no port named ${port}`);
  return p.containerPort as number;
}

/** Env vars a container gets from a Secret, and the files under each Secret-backed mount. */
function suppliedSecrets(d: Obj): { env: Map<string, { name: string; key: string }>; files: Map<string, { name: string; key: string }>; mounts: Map<string, Obj> } {
  const c = container(d);
  const env = new Map<string, { name: string; key: string }>();
  for (const e of (c.env ?? []) as Obj[]) if (e.valueFrom?.secretKeyRef) env.set(e.name, e.valueFrom.secretKeyRef);
  const volumes = new Map<string, Obj>((d.spec.template.spec.volumes as Obj[]).map((v) => [v.name, v]));
  const files = new Map<string, { name: string; key: string }>();
  const mounts = new Map<string, Obj>();
  for (const m of c.volumeMounts as Obj[]) {
    const v = volumes.get(m.name)!;
    mounts.set(m.mountPath, v);
    const sources: Obj[] = v.secret ? [{ secret: v.secret }] : (v.projected?.sources ?? []);
    for (const s of sources) {
      if (!s.secret) continue;
      const name = s.secret.name ?? s.secret.secretName;
      // Without items, every key of the Secret appears as a file of that name.
      const items: Obj[] = s.secret.items ?? Object.keys(documentedSecret(name) ?? {}).map((key) => ({ key, path: key }));
      for (const item of items) files.set(path.posix.join(m.mountPath, item.path), { name, key: item.key });
    }
  }
  return { env, files, mounts };
}

function documentedSecret(name: string): Record<string, string> | undefined {
  return secretsExample.find((s) => s.metadata.name === name)?.stringData;
}

describe('the kustomization', () => {
  it('lists every manifest, and every object is valid against the Kubernetes API schema', () => {
    const listed = new Set(k.files.map((f) => path.relative(K8S, f)));
    const onDisk = fs.readdirSync(K8S, { recursive: true }).map(String).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && f !== 'secrets.example.yaml');
    expect(onDisk.filter((f) => !listed.has(f))).toEqual([]);
    const models: Record<string, new (o: Obj) => { validate(): void }> = { Deployment, Service, Namespace, PodDisruptionBudget, Secret };
    for (const o of [...k.objects, ...secretsExample]) {
      const Model = models[o.kind];
      expect(Model, `${o.kind} has a schema here`).toBeDefined();
      expect(() => new Model!(o).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
    }
    expect(k.objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'Deployment/warden-agent-clinical',
      'Deployment/warden-control-plane',
      'Namespace/warden',
      'PodDisruptionBudget/warden-agent-clinical',
      'PodDisruptionBudget/warden-control-plane',
      'Service/warden-agent-clinical',
      'Service/warden-control-plane',
    ]);
    expect(k.objects.filter((o) => o.kind !== 'Namespace').every((o) => o.metadata.namespace === 'warden')).toBe(true);
    // The ConfigMap the control plane mounts is the generated one.
    const configVolume = (cpDeployment.spec.template.spec.volumes as Obj[]).find((v) => v.configMap);
    expect(k.generatedConfigMaps.has(configVolume!.configMap.name)).toBe(true);
  });

  it('Services and disruption budgets select the pods of their Deployment, on ports the containers declare', () => {
    for (const [svc, dep] of [['warden-control-plane', cpDeployment], ['warden-agent-clinical', agentDeployment]] as const) {
      const podLabels = dep.spec.template.metadata.labels as Record<string, string>;
      for (const kind of ['Service', 'PodDisruptionBudget']) {
        const o = byKind(kind).find((x) => x.metadata.name === svc)!;
        const selector = (kind === 'Service' ? o.spec.selector : o.spec.selector.matchLabels) as Record<string, string>;
        expect(Object.entries(selector).every(([l, v]) => podLabels[l] === v), `${kind}/${svc}`).toBe(true);
      }
      expect(Object.entries(dep.spec.selector.matchLabels as Record<string, string>).every(([l, v]) => podLabels[l] === v)).toBe(true);
      const service = byKind('Service').find((x) => x.metadata.name === svc)!;
      for (const p of service.spec.ports as Obj[]) expect(() => portOf(container(dep), p.targetPort)).not.toThrow();
    }
  });
});

describe('the control plane Deployment', () => {
  it('runs two hardened replicas of the control-plane image with the generated config', () => {
    expect(cpDeployment.spec.replicas).toBe(2);
    const c = container(cpDeployment);
    expect(c.image).toMatch(/^ghcr\.io\/warden-dev\/warden-control-plane:/);
    expect(k.kustomization.images.map((i: Obj) => i.name)).toContain(c.image.split(':')[0]);
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(cpDeployment.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    const configFile = flags(c.args).get('config')![0]!;
    const { mounts } = suppliedSecrets(cpDeployment);
    expect(mounts.get(path.posix.dirname(configFile))?.configMap?.name).toBe('warden-control-plane-config');
    expect(k.generatedConfigMaps.get('warden-control-plane-config')!.has(path.posix.basename(configFile))).toBe(true);
    for (const key of ['repository', 'branch', 'http', 'grpc', 'signingKeyFile', 'people']) expect(cpConfig).toHaveProperty(key);
  });

  it('probes /healthz and /readyz on the port the API listens on, routes the API really serves', async () => {
    const c = container(cpDeployment);
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(c.startupProbe.httpGet.path).toBe('/healthz');
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) expect(portOf(c, probe.httpGet.port)).toBe(cpConfig.http.port);
    expect(portOf(c, 'grpc')).toBe(cpConfig.grpc.port);
    const annotations = cpDeployment.spec.template.metadata.annotations as Record<string, string>;
    expect(Number(annotations['prometheus.io/port'])).toBe(cpConfig.http.port);

    // The real API, built as control-plane.ts builds it, answers those paths.
    let ready = false;
    const api = await buildApi({
      logger: pino({ level: 'silent' }),
      people: { verifier: new TokenVerifier(cpConfig.people.issuers), capabilities: cpConfig.people.capabilities },
      health: { ready: () => ready },
      config: { current: () => undefined, lastAttempt: () => undefined },
      agents: { list: async () => [] },
      register: async (app) => void (await app.register(metricsRoutes, { metrics: new ControlPlaneMetrics({ currentVersion: () => undefined, connectedAgents: () => 0 }) })),
    });
    try {
      expect((await api.inject({ url: c.livenessProbe.httpGet.path })).statusCode).toBe(200);
      expect((await api.inject({ url: c.readinessProbe.httpGet.path })).statusCode).toBe(503);
      ready = true;
      expect((await api.inject({ url: c.readinessProbe.httpGet.path })).statusCode).toBe(200);
      const metrics = await api.inject({ url: annotations['prometheus.io/path']! });
      expect(metrics.statusCode).toBe(200);
      expect(metrics.body).toMatch(/^warden_approval_wait_seconds_count 0$/m);
    } finally {
      await api.close();
    }
  });

  it('gets every secret its config references from a documented Secret; the database URL carries no password', () => {
    const { env, files } = suppliedSecrets(cpDeployment);
    const refs = secretReferences(cpConfig);
    expect([...refs.env].sort()).toEqual(['WARDEN_GIT_TOKEN', 'WARDEN_WEBHOOK_SECRET']);
    for (const name of refs.env) expect(env.has(name), `env ${name}`).toBe(true);
    expect([...refs.files].sort()).toEqual(['/etc/warden/grpc-tls/tls.crt', '/etc/warden/grpc-tls/tls.key', '/etc/warden/signing/signing.key']);
    for (const f of refs.files) expect(files.has(f), `file ${f}`).toBe(true);
    expect(new URL(cpConfig.databaseUrl).password).toBe('');
    expect(env.has('PGPASSWORD')).toBe(true);
    for (const ref of [...env.values(), ...files.values()]) expect(documentedSecret(ref.name), `${ref.name}`).toHaveProperty([ref.key]);
  });
});

describe('the agent Deployment', () => {
  const c = container(agentDeployment);
  const args = flags(c.args);

  it('dials out to the control plane Service with flags the agent accepts', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'agent/src/main.ts', '--help'], { cwd: ROOT, timeout: 30_000 });
    for (const flag of args.keys()) expect(stdout, `--${flag}`).toContain(`--${flag}`);
    const [host, port] = args.get('control-plane')![0]!.split(':');
    expect(host).toBe('warden-control-plane.warden.svc.cluster.local');
    expect(Number(port)).toBe(cpConfig.grpc.port);
    expect(byKind('Service').find((s) => s.metadata.name === 'warden-control-plane')!.spec.ports.map((p: Obj) => p.port)).toContain(Number(port));
    expect(c.image).toMatch(/^ghcr\.io\/warden-dev\/warden-agent:/);
    expect(agentDeployment.spec.replicas).toBeGreaterThanOrEqual(2);
    const { mounts } = suppliedSecrets(agentDeployment);
    expect(mounts.get(args.get('state-dir')![0]!)?.emptyDir).toBeDefined();
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    // Kubernetes waits past the drain: shutdown grace + the 5 s acknowledgement wait.
    expect(agentDeployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(Number(args.get('shutdown-grace')![0]) + 5);
  });

  it('probes the ops endpoint the agent serves: /healthz live, /readyz ready only with a bundle', async () => {
    const [opsAddress, opsPort] = args.get('ops')![0]!.split(':');
    expect(opsAddress).toBe('0.0.0.0');
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) expect(portOf(c, probe.httpGet.port)).toBe(Number(opsPort));
    expect(c.livenessProbe.httpGet.path).toBe('/healthz');
    expect(c.readinessProbe.httpGet.path).toBe('/readyz');
    expect(Number(agentDeployment.spec.template.metadata.annotations['prometheus.io/port'])).toBe(Number(opsPort));
    // The real ops server of an agent that has no bundle yet.
    const ops = await startOpsServer({ address: '127.0.0.1', port: 0, metrics: new AgentMetrics(), readiness: async () => 'no policy bundle yet', log: pino({ level: 'silent' }) });
    try {
      const at = (p: string): Promise<Response> => fetch(`http://127.0.0.1:${ops.port}${p}`);
      expect((await at(c.livenessProbe.httpGet.path)).status).toBe(200);
      expect((await at(c.readinessProbe.httpGet.path)).status).toBe(503);
      expect((await at(agentDeployment.spec.template.metadata.annotations['prometheus.io/path'])).status).toBe(200);
    } finally {
      await ops.close();
    }
  });

  it('gets every secret and file the example config repository references from a documented Secret', async () => {
    const { env, files } = suppliedSecrets(agentDeployment);
    const repo = await loadConfigDir(path.join(ROOT, 'policy-examples/hipaa'));
    const refs = secretReferences(repo.map((d) => d.spec));
    expect(refs.env.size).toBeGreaterThan(0);
    for (const name of [...refs.env, args.get('enroll-token')![0]!.replace(/^env:/, '')]) expect(env.has(name), `env ${name}`).toBe(true);
    for (const f of [...refs.files, args.get('ca-file')![0]!]) expect(files.has(f), `file ${f}`).toBe(true);
    for (const ref of [...env.values(), ...files.values()]) expect(documentedSecret(ref.name), ref.name).toHaveProperty([ref.key]);
  });
});
