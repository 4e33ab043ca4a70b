import { createHmac } from 'node:crypto';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { HOSPITAL_REPO } from '../config/example-repo.js';
import { configCompiler } from './config-compiler.js';
import { RepoSource } from './repo-source.js';
import { fakeCompiler, makeRepo, nextEvent, removeTemps, silentLogger, startGitHttpServer, tempDir, type TestRepo } from './test-support.js';
import { RepoWatcher, type CompileFn } from './watcher.js';
import { GIT_HOOK_PATH, gitWebhook } from './webhook.js';

const SECRET = 'webhook-secret-for-tests';
const apps: FastifyInstance[] = [];

afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});
afterAll(removeTemps);

function sign(body: string, secret = SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

async function setup<B>(compile: CompileFn<B>, repo?: TestRepo) {
  const r = repo ?? (await makeRepo());
  const watcher = new RepoWatcher({ source: new RepoSource({ kind: 'local', dir: r.dir }), branch: 'main', intervalMs: 60_000, compile, logger: silentLogger });
  const app = Fastify({ logger: false });
  await app.register(gitWebhook, { secret: SECRET, branch: 'main', watcher });
  // A sibling route: the plugin's raw-body parser must not leak out of its scope.
  app.post('/echo', async (req) => req.body);
  await app.ready();
  apps.push(app);
  return { repo: r, watcher, app };
}

function githubPush(app: FastifyInstance, payload: object, opts: { event?: string; signature?: string | null } = {}) {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': opts.event ?? 'push',
    'x-github-delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958',
  };
  if (opts.signature !== null) headers['x-hub-signature-256'] = opts.signature ?? sign(body);
  return app.inject({ method: 'POST', url: GIT_HOOK_PATH, headers, payload: body });
}

function gitlabPush(app: FastifyInstance, payload: object, token: string, event = 'Push Hook') {
  return app.inject({
    method: 'POST',
    url: GIT_HOOK_PATH,
    headers: { 'content-type': 'application/json', 'x-gitlab-token': token, 'x-gitlab-event': event },
    payload: JSON.stringify(payload),
  });
}

describe('git webhook', () => {
  it('a signed GitHub push to the watched branch triggers a run and the new commit becomes current', async () => {
    const { repo, watcher, app } = await setup(fakeCompiler());
    const sha = await repo.commit({ 'a.yaml': 'a: 1\n' });
    const bundle = nextEvent<[{ sha: string }]>(watcher, 'bundle');
    const res = await githubPush(app, { ref: 'refs/heads/main', before: '0'.repeat(40), after: sha, repository: { full_name: 'hospital/warden-config' } });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ triggered: true, ref: 'refs/heads/main', after: sha });
    expect((await bundle)[0].sha).toBe(sha);
    expect(watcher.current?.sha).toBe(sha);
  });

  it('verifies the signature over the exact bytes received', async () => {
    const { watcher, app } = await setup(fakeCompiler());
    // Same JSON value, different bytes: a re-serialising parser would wrongly accept it.
    const signedBody = '{"ref":"refs/heads/main"}';
    const res = await app.inject({
      method: 'POST',
      url: GIT_HOOK_PATH,
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': sign(signedBody) },
      payload: '{ "ref": "refs/heads/main" }',
    });
    expect(res.statusCode).toBe(401);
    expect(watcher.lastAttempt).toBeUndefined();
  });

  it('rejects a bad, malformed or missing signature with 401 and does not trigger', async () => {
    const { repo, watcher, app } = await setup(fakeCompiler());
    await repo.commit({ 'a.yaml': 'a: 1\n' });
    const payload = { ref: 'refs/heads/main' };
    const wrongKey = await githubPush(app, payload, { signature: sign(JSON.stringify(payload), 'not-the-secret') });
    expect(wrongKey.statusCode).toBe(401);
    expect(wrongKey.json()).toEqual({ triggered: false, reason: 'bad signature' });
    const malformed = await githubPush(app, payload, { signature: 'sha1=abc' });
    expect(malformed.json()).toEqual({ triggered: false, reason: 'malformed signature' });
    const missing = await githubPush(app, payload, { signature: null });
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toEqual({ triggered: false, reason: 'missing signature' });
    // Unsigned junk is refused before it is parsed: 401, not 400.
    const junk = await app.inject({ method: 'POST', url: GIT_HOOK_PATH, headers: { 'content-type': 'application/json' }, payload: '{not json' });
    expect(junk.statusCode).toBe(401);
    await new Promise((r) => setTimeout(r, 50));
    expect(watcher.current).toBeUndefined();
  });

  it('accepts a GitLab push with the right token and refuses a wrong one', async () => {
    const { repo, watcher, app } = await setup(fakeCompiler());
    const sha = await repo.commit({ 'a.yaml': 'a: 1\n' });
    const bad = await gitlabPush(app, { object_kind: 'push', ref: 'refs/heads/main' }, 'wrong');
    expect(bad.statusCode).toBe(401);
    expect(bad.json()).toEqual({ triggered: false, reason: 'bad token' });
    const prefix = await gitlabPush(app, { object_kind: 'push', ref: 'refs/heads/main' }, SECRET.slice(0, -1));
    expect(prefix.statusCode).toBe(401);

    const bundle = nextEvent<[{ sha: string }]>(watcher, 'bundle');
    const ok = await gitlabPush(app, { object_kind: 'push', ref: 'refs/heads/main', after: sha, checkout_sha: sha }, SECRET);
    expect(ok.statusCode).toBe(202);
    expect(ok.json()).toEqual({ triggered: true, ref: 'refs/heads/main', after: sha });
    expect((await bundle)[0].sha).toBe(sha);
  });

  it('acknowledges pushes to other branches and tags, and other events, without triggering', async () => {
    const { repo, watcher, app } = await setup(fakeCompiler());
    await repo.commit({ 'a.yaml': 'a: 1\n' });
    const other = await githubPush(app, { ref: 'refs/heads/feature/new-role' });
    expect(other.statusCode).toBe(202);
    expect(other.json()).toEqual({ triggered: false, ref: 'refs/heads/feature/new-role', reason: 'not the watched branch (refs/heads/main)' });
    const tag = await gitlabPush(app, { object_kind: 'tag_push', ref: 'refs/tags/main' }, SECRET, 'Tag Push Hook');
    expect(tag.json()).toMatchObject({ triggered: false, reason: 'ignored event "Tag Push Hook"' });
    const issues = await githubPush(app, { action: 'opened' }, { event: 'issues' });
    expect(issues.statusCode).toBe(202);
    expect(issues.json()).toEqual({ triggered: false, reason: 'ignored event "issues"' });
    await new Promise((r) => setTimeout(r, 50));
    expect(watcher.lastAttempt).toBeUndefined();
  });

  it('answers a signed GitHub ping with 200', async () => {
    const { app } = await setup(fakeCompiler());
    const res = await githubPush(app, { zen: 'Keep it logically awesome.', hook_id: 1 }, { event: 'ping' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ triggered: false, reason: 'ping' });
  });

  it('accepts GitHub form-encoded deliveries and leaves other routes to the default JSON parser', async () => {
    const { repo, watcher, app } = await setup(fakeCompiler());
    const sha = await repo.commit({ 'a.yaml': 'a: 1\n' });
    const body = new URLSearchParams({ payload: JSON.stringify({ ref: 'refs/heads/main', after: sha }) }).toString();
    const bundle = nextEvent<[{ sha: string }]>(watcher, 'bundle');
    const res = await app.inject({
      method: 'POST',
      url: GIT_HOOK_PATH,
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-github-event': 'push', 'x-hub-signature-256': sign(body) },
      payload: body,
    });
    expect(res.statusCode).toBe(202);
    expect((await bundle)[0].sha).toBe(sha);

    const echo = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{"a":1}' });
    expect(echo.json()).toEqual({ a: 1 });
  });

  it('returns 400 for a signed body that is not JSON, and refuses an empty secret at registration', async () => {
    const { app } = await setup(fakeCompiler());
    const res = await app.inject({
      method: 'POST',
      url: GIT_HOOK_PATH,
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': sign('{oops') },
      payload: '{oops',
    });
    expect(res.statusCode).toBe(400);
    const bare = Fastify({ logger: false });
    await expect(bare.register(gitWebhook, { secret: '', branch: 'main', watcher: { triggerNow: async () => ({ status: 'unchanged', sha: '' }) } }).ready()).rejects.toThrow(/empty secret/);
    await bare.close();
  });
});

function stats(ms: number[]): { median: number; p90: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => Number(s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(1));
  return { median: at(0.5), p90: at(0.9), max: at(1) };
}

/** Commit, then webhook, then wait for the bundle event; times from the commit being written to the event. */
async function measure(app: FastifyInstance, watcher: RepoWatcher<unknown>, repo: TestRepo, rounds: number, content: (i: number) => Record<string, string>) {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const sha = await repo.commit(content(i), `change ${i}`);
    const t0 = performance.now();
    const bundle = nextEvent<[{ sha: string }]>(watcher, 'bundle');
    const res = await githubPush(app, { ref: 'refs/heads/main', after: sha });
    expect(res.statusCode).toBe(202);
    const [applied] = await bundle;
    times.push(performance.now() - t0);
    expect(applied.sha).toBe(sha);
  }
  return stats(times);
}

describe('commit → bundle latency through the webhook', () => {
  const ROUNDS = 15;

  it('local repository, fake compiler', async () => {
    const { repo, watcher, app } = await setup(fakeCompiler());
    const result = await measure(app, watcher as RepoWatcher<unknown>, repo, ROUNDS, (i) => ({ 'a.yaml': `a: ${i}\n` }));
    console.log(`[gitops latency] local + fake compiler (ms): ${JSON.stringify(result)}`);
    expect(result.median).toBeLessThan(500);
  });

  it('local repository, real compiler on the hospital repository', async () => {
    const repo = await makeRepo();
    await repo.commit({ ...HOSPITAL_REPO });
    const { watcher, app } = await setup(configCompiler(), repo);
    await watcher.triggerNow();
    const role = HOSPITAL_REPO['roles/billing.yaml']!;
    const result = await measure(app, watcher as RepoWatcher<unknown>, repo, ROUNDS, (i) => ({ 'roles/billing.yaml': role.replace('maxRows: 500', `maxRows: ${501 + i}`) }));
    console.log(`[gitops latency] local + real compiler (ms): ${JSON.stringify(result)}`);
    expect(result.median).toBeLessThan(1000);
  });

  it('remote over git http-backend with a token, real compiler', async () => {
    const root = await tempDir();
    const upstream = await makeRepo('main', path.join(root, 'config'));
    await upstream.commit({ ...HOSPITAL_REPO });
    const server = await startGitHttpServer(root, 'tok');
    try {
      const watcher = new RepoWatcher({
        source: new RepoSource({ kind: 'remote', url: server.url('config'), branch: 'main', token: 'tok', cacheDir: await tempDir() }),
        branch: 'main',
        intervalMs: 60_000,
        compile: configCompiler(),
        logger: silentLogger,
      });
      const app = Fastify({ logger: false });
      await app.register(gitWebhook, { secret: SECRET, branch: 'main', watcher });
      apps.push(app);
      await watcher.triggerNow();
      const role = HOSPITAL_REPO['roles/billing.yaml']!;
      const result = await measure(app, watcher as RepoWatcher<unknown>, upstream, ROUNDS, (i) => ({ 'roles/billing.yaml': role.replace('maxRows: 500', `maxRows: ${501 + i}`) }));
      console.log(`[gitops latency] remote (http-backend, token) + real compiler (ms): ${JSON.stringify(result)}`);
      expect(result.median).toBeLessThan(2000);
    } finally {
      await server.close();
    }
  });
});
