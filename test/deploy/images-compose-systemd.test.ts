/**
 * The Dockerfiles, the compose example and the systemd units, checked
 * against the real build: the images' runtime layout is rebuilt outside the
 * repository (production dependencies by the Dockerfile's own `npm ci`
 * command, `dist/` by `npm run build`'s compiler settings) and every entry
 * point they start must exist there and load with only those dependencies
 * (`--help`); images, users, health checks and secret references must agree
 * across Dockerfiles, manifests, compose and units.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPLOY, ROOT, buildRuntime, flags, kustomize, readDockerfile, readUnit, readYaml, readYamlDocs, secretReferences, type DockerInstruction, type Obj } from './deploy-files.js';
import { loadConfigDir } from '../../control-plane/src/config/index.js';
import { validateRepository } from '../../control-plane/src/cli/validate.js';
import { AGENT_NODE_OPTIONS } from '../support/processes.js';
import { NATIVE_ADDON_PATH } from '../../agent/src/engines/postgres/native-relay.js';

const run = promisify(execFile);
let app: string;

beforeAll(async () => {
  // Both Dockerfiles install the same way (checked below), so one runtime stands for both.
  app = await buildRuntime(path.join(ROOT, 'deploy/docker/agent.Dockerfile'));
}, 300_000);

afterAll(() => {
  if (app) fs.rmSync(app, { recursive: true, force: true });
});

/** Runs a compiled entry point (a path inside dist/) of the runtime layout with --help. */
/** `--help` of a program as a launcher starts it: node options (e.g. --single-threaded), then the script. */
async function helpOf(distPath: string, nodeOptions: string[] = []): Promise<string> {
  const file = path.join(app, 'dist', distPath.replace(/^(\/app\/|\/opt\/warden\/)?dist\//, ''));
  expect(fs.existsSync(file), `${distPath} is in the build output`).toBe(true);
  const { stdout } = await run(process.execPath, [...nodeOptions, file, '--help'], { cwd: app, timeout: 30_000 });
  return stdout;
}

/** A launcher's words after `node`: its node options, the script, and the script's own arguments. */
function nodeCommand(words: string[]): { options: string[]; script: string; args: string[] } {
  const i = words.findIndex((w) => !w.startsWith('-'));
  return { options: words.slice(0, i), script: words[i]!, args: words.slice(i + 1) };
}

const images = {
  agent: { dockerfile: 'deploy/docker/agent.Dockerfile', deployment: 'warden-agent-clinical' },
  'control-plane': { dockerfile: 'deploy/docker/control-plane.Dockerfile', deployment: 'warden-control-plane' },
} as const;

function jsonArray(args: string): string[] {
  return JSON.parse(args) as string[];
}

describe('Dockerfiles', () => {
  for (const [component, { dockerfile }] of Object.entries(images)) {
    it(`${component}: multi-stage on node:20-slim, production dependencies only, non-root, health-checked, starting a built entry point`, async () => {
      const ins = readDockerfile(path.join(ROOT, dockerfile));
      const last = Math.max(...ins.map((i) => i.stage));
      const final = ins.filter((i) => i.stage === last);
      const one = (list: DockerInstruction[], op: string): DockerInstruction => {
        const hits = list.filter((i) => i.op === op);
        expect(hits, op).toHaveLength(1);
        return hits[0]!;
      };
      expect(ins.find((i) => i.op === 'ARG' && i.stage === 0)?.args).toBe('NODE_IMAGE=node:20-slim');
      expect(ins.filter((i) => i.op === 'FROM').map((i) => i.args)).toEqual(['${NODE_IMAGE} AS build', '${NODE_IMAGE} AS deps', '${NODE_IMAGE} AS runtime']);
      expect(ins.filter((i) => i.stage === 2).map((i) => `${i.op} ${i.args}`)).toEqual(
        readDockerfile(path.join(ROOT, images.agent.dockerfile)).filter((i) => i.stage === 2).map((i) => `${i.op} ${i.args}`),
      );
      expect(ins.some((i) => i.op === 'RUN' && i.stage === 2 && /npm ci --omit=dev/.test(i.args))).toBe(true);
      // Only the build output (and the agent's native relay, where the agent looks for it) and the
      // production node_modules reach the runtime stage.
      const built = ['--from=build /src/dist ./dist', ...(component === 'agent' ? [`--from=build /src/${NATIVE_ADDON_PATH} ./${NATIVE_ADDON_PATH}`] : [])];
      expect(final.filter((i) => i.op === 'COPY' && /--from=build/.test(i.args)).map((i) => i.args)).toEqual(built);
      expect(final.filter((i) => i.op === 'COPY' && /node_modules/.test(i.args)).map((i) => i.args)).toEqual(['--from=deps /app/node_modules ./node_modules']);
      expect(one(final, 'USER').args).toBe('10001:10001');
      expect(final.some((i) => i.op === 'RUN' && /useradd --system --uid 10001/.test(i.args))).toBe(true);
      const title = /org\.opencontainers\.image\.title="([^"]+)"/.exec(one(final, 'LABEL').args)![1];
      expect(title).toBe(`warden-${component}`);

      const entry = jsonArray(one(final, 'ENTRYPOINT').args);
      expect(entry[0]).toBe('node');
      const launch = nodeCommand(entry.slice(1));
      // The agent runs with the node options its process tests and benchmarks use.
      if (component === 'agent') expect(launch.options).toEqual(AGENT_NODE_OPTIONS);
      const usage = await helpOf(launch.script, launch.options);
      expect(usage).toMatch(new RegExp(`warden-${component}`));
      for (const flag of flags(jsonArray(one(final, 'CMD').args)).keys()) expect(usage).toContain(`--${flag}`);

      // The health check asks the port and path the component serves /healthz on.
      const health = one(final, 'HEALTHCHECK').args;
      const url = /fetch\('(http:\/\/127\.0\.0\.1:(\d+)(\/\w+))'\)/.exec(health)!;
      expect(url[3]).toBe('/healthz');
      const exposed = one(final, 'EXPOSE').args.split(' ').map(Number);
      expect(exposed).toContain(Number(url[2]));
      if (component === 'agent') expect(flags(jsonArray(one(final, 'CMD').args)).get('ops')![0]).toBe(`0.0.0.0:${url[2]}`);
      else expect(kustomize(path.join(DEPLOY, 'kubernetes')).generatedConfigMaps.get('warden-control-plane-config')!.get('control-plane.yaml')!.http.port).toBe(Number(url[2]));
    }, 60_000);
  }

  it('the control-plane image carries the warden CLI it links into the PATH', async () => {
    const ins = readDockerfile(path.join(ROOT, images['control-plane'].dockerfile));
    const link = ins.find((i) => i.op === 'RUN' && i.args.startsWith('ln -s'))!.args.split(' ');
    expect(link[3]).toBe('/usr/local/bin/warden');
    expect(await helpOf(link[2]!)).toMatch(/agents enroll-token/);
    const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['.git', '**/node_modules', 'dist']) expect(ignore).toContain(p);
  }, 60_000);

  it('Kubernetes and compose run the images these Dockerfiles build', () => {
    const k = kustomize(path.join(DEPLOY, 'kubernetes'));
    const compose = readYaml(path.join(DEPLOY, 'compose/compose.yaml'));
    for (const [component, { dockerfile, deployment }] of Object.entries(images)) {
      const image = `ghcr.io/warden-dev/warden-${component}`;
      const d = k.objects.find((o) => o.kind === 'Deployment' && o.metadata.name === deployment)!;
      expect(d.spec.template.spec.containers[0].image.split(':')[0]).toBe(image);
      expect(compose.services[component].image.split(':')[0]).toBe(image);
      expect(compose.services[component].build).toEqual({ context: '../..', dockerfile });
    }
  });
});

describe('the compose example', () => {
  const dir = path.join(DEPLOY, 'compose');
  const compose = readYaml(path.join(dir, 'compose.yaml'));
  const services = compose.services as Record<string, Obj>;

  it('runs the control plane, an agent, PostgreSQL and Redis, each started after what it needs', () => {
    expect(Object.keys(services).sort()).toEqual(['agent', 'control-plane', 'enroll-token', 'postgres', 'redis']);
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, cond] of Object.entries((s.depends_on ?? {}) as Record<string, Obj>)) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        // "healthy" needs a health check: declared here or built into the image (HEALTHCHECK).
        if (cond.condition === 'service_healthy') expect(services[dep]!.healthcheck ?? services[dep]!.build).toBeDefined();
      }
      for (const v of (s.volumes ?? []) as string[]) {
        const [source] = v.split(':');
        if (source!.startsWith('.')) continue;
        expect(compose.volumes, `volume ${source}`).toHaveProperty([source!]);
      }
    }
    expect(services.agent!.depends_on['enroll-token'].condition).toBe('service_completed_successfully');
  });

  it('passes every ${VAR} from .env (documented in env.example) and every secret the configs reference', async () => {
    const text = fs.readFileSync(path.join(dir, 'compose.yaml'), 'utf8');
    const used = new Set([...text.matchAll(/\$\{(\w+)/g)].map((m) => m[1]!));
    const documented = new Set([...fs.readFileSync(path.join(dir, 'env.example'), 'utf8').matchAll(/^(\w+)=/gm)].map((m) => m[1]!));
    expect([...used].filter((v) => !documented.has(v))).toEqual([]);
    const cp = readYaml(path.join(dir, 'control-plane.yaml'));
    expect(new URL(cp.databaseUrl).password).toBe('');
    expect(services['control-plane']!.environment).toHaveProperty('PGPASSWORD');
    const cpMounts = new Map((services['control-plane']!.volumes as string[]).map((v) => [v.split(':')[1]!, v.split(':')[0]!]));
    expect(cpMounts.get('/etc/warden/control-plane.yaml')).toBe('./control-plane.yaml');
    expect(cpMounts.get(cp.repository.path)).toBe('./config-repo');

    // The config repository make-config-repo.sh creates is valid, and the agent gets what it references.
    const repo = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warden-compose-repo-')), 'config-repo');
    try {
      await run('sh', [path.join(dir, 'make-config-repo.sh'), repo], { timeout: 30_000 });
      const outcome = await validateRepository(repo);
      expect(outcome.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      expect(outcome.ok).toBe(true);
      const refs = secretReferences(['targets.yaml', 'masking.yaml', 'listeners.yaml'].flatMap((f) => readYamlDocs(path.join(repo, f))));
      const agentEnv = services.agent!.environment as Record<string, string>;
      for (const name of refs.env) expect(agentEnv, `env ${name}`).toHaveProperty(name);
      const agentFiles = (services.agent!.volumes as string[]).map((v) => v.split(':')[1]);
      for (const f of refs.files) expect(agentFiles, `file ${f}`).toContain(f);
      expect(fs.readFileSync(path.join(repo, 'targets.yaml'), 'utf8')).toMatch(/host: postgres\n/);
    } finally {
      fs.rmSync(path.dirname(repo), { recursive: true, force: true });
    }
  }, 60_000);

  it('gives the agent flags it accepts, dialing the control plane service on its gRPC port', async () => {
    const usage = await helpOf('dist/agent/src/main.js');
    const f = flags(services.agent!.command as string[]);
    for (const flag of f.keys()) expect(usage).toContain(`--${flag}`);
    const cp = readYaml(path.join(dir, 'control-plane.yaml'));
    expect(f.get('control-plane')![0]).toBe(`control-plane:${cp.grpc.port}`);
    expect(f.get('enroll-token')![0]).toBe('file:/run/warden-enroll/enroll-token');
    const enroll = flags(services['enroll-token']!.command as string[]);
    expect(enroll.get('output')![0]).toBe('/var/lib/warden/enroll-token');
    expect(await helpOf('dist/control-plane/src/cli/warden.js')).toMatch(/--output FILE/);
  }, 60_000);
});

describe('systemd units', () => {
  const dir = path.join(DEPLOY, 'systemd');
  const sysusers = fs.readFileSync(path.join(dir, 'warden.sysusers.conf'), 'utf8');
  for (const [unit, envExample] of [['warden-agent.service', 'agent.env.example'], ['warden-control-plane.service', 'control-plane.env.example']] as const) {
    it(`${unit}: hardened, restarted on failure, starting a built entry point with flags it accepts`, async () => {
      const u = readUnit(path.join(dir, unit));
      const s = u.get('Service')!;
      const one = (key: string): string => {
        expect(s.get(key), key).toHaveLength(1);
        return s.get(key)![0]!;
      };
      for (const [key, value] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', RestrictSUIDSGID: 'yes', CapabilityBoundingSet: '', Restart: 'on-failure' })) {
        expect(one(key), key).toBe(value);
      }
      // V8 needs writable+executable memory: this switch would kill node at start.
      expect(s.has('MemoryDenyWriteExecute')).toBe(false);
      const user = one('User');
      expect(user).not.toBe('root');
      expect(sysusers).toMatch(new RegExp(`^u ${user} `, 'm'));
      expect(u.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);

      const exec = one('ExecStart').split(' ');
      expect(exec[0]).toBe('/usr/bin/node');
      const launch = nodeCommand(exec.slice(1));
      if (unit === 'warden-agent.service') expect(launch.options).toEqual(AGENT_NODE_OPTIONS);
      const usage = await helpOf(launch.script, launch.options);
      const f = flags(launch.args);
      for (const flag of f.keys()) expect(usage).toContain(`--${flag}`);
      if (f.has('state-dir')) expect(f.get('state-dir')![0]).toBe(`/var/lib/${one('StateDirectory')}`);
      if (f.has('shutdown-grace')) expect(parseInt(one('TimeoutStopSec'), 10)).toBeGreaterThan(Number(f.get('shutdown-grace')![0]) + 5);

      // Every env: reference the service's config uses is in its EnvironmentFile template.
      const documented = new Set([...fs.readFileSync(path.join(dir, envExample), 'utf8').matchAll(/^(\w+)=/gm)].map((m) => m[1]!));
      const needed = unit === 'warden-agent.service'
        ? [...secretReferences((await loadConfigDir(path.join(ROOT, 'policy-examples/hipaa'))).map((d) => d.spec)).env, f.get('enroll-token')![0]!.replace(/^env:/, '')]
        : [...secretReferences(readYaml(path.join(DEPLOY, 'kubernetes/control-plane/control-plane.yaml'))).env, 'PGPASSWORD'];
      expect(needed.filter((n) => !documented.has(n))).toEqual([]);
    }, 60_000);
  }
});

describe('the single-file agent example', () => {
  it('loads and compiles with the agent config checks, with the ops port the image health-checks', async () => {
    const { loadAgentConfig } = await import('../../agent/src/config/load.js');
    const { bundleFromConfig } = await import('../../agent/src/config/to-bundle.js');
    const file = path.join(DEPLOY, 'examples/agent.yaml');
    const config = loadAgentConfig(file);
    expect(bundleFromConfig(config, file).version).toMatch(/^[0-9a-f]{40}$/);
    const health = readDockerfile(path.join(ROOT, images.agent.dockerfile)).find((i) => i.op === 'HEALTHCHECK')!.args;
    expect(health).toContain(`127.0.0.1:${config.ops!.port}/healthz`);
    expect(config.shutdown!.graceSeconds).toBeGreaterThan(0);
  });
});
