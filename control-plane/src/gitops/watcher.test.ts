import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HOSPITAL_REPO } from '../config/example-repo.js';
import { configCompiler } from './config-compiler.js';
import { RepoSource } from './repo-source.js';
import { fakeCompiler, makeRepo, nextEvent, removeTemps, silentLogger, startGitHttpServer, tempDir } from './test-support.js';
import { RepoWatcher, type WatchSource } from './watcher.js';

afterAll(removeTemps);

async function localWatcher() {
  const repo = await makeRepo();
  const compile = fakeCompiler();
  const watcher = new RepoWatcher({
    source: new RepoSource({ kind: 'local', dir: repo.dir }),
    branch: 'main',
    intervalMs: 60_000,
    compile,
    logger: silentLogger,
  });
  return { repo, compile, watcher };
}

describe('RepoWatcher', () => {
  it('applies good commits, rejects a bad one while keeping the last good bundle, then accepts the fix', async () => {
    const { repo, compile, watcher } = await localWatcher();
    const bundles: string[] = [];
    const rejected: string[] = [];
    watcher.on('bundle', (applied) => bundles.push(applied.sha));
    watcher.on('rejected', (r) => rejected.push(r.sha));

    const first = await repo.commit({ 'targets.yaml': 'kind: Target\n' }, 'first');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: first });
    expect(watcher.current).toMatchObject({ sha: first, bundle: { sha: first, files: ['targets.yaml'] } });
    expect(watcher.current?.commit.message).toBe('first\n');

    const second = await repo.commit({ 'roles/a.yaml': 'kind: Role\n' }, 'second');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: second });
    expect(watcher.current?.bundle).toEqual({ sha: second, files: ['roles/a.yaml', 'targets.yaml'] });

    const bad = await repo.commit({ 'roles/a.yaml': 'kind: Role\ninvalid: true\n' }, 'break it');
    const result = await watcher.triggerNow();
    expect(result).toMatchObject({ status: 'rejected', sha: bad });
    expect(watcher.current?.sha).toBe(second);
    expect(watcher.lastAttempt).toMatchObject({ sha: bad, ok: false });
    expect(watcher.lastAttempt?.diagnostics).toEqual([
      { severity: 'error', file: 'roles/a.yaml', line: 2, path: 'invalid', code: 'test-invalid', message: 'marked invalid' },
    ]);
    expect(watcher.failures).toBe(1);

    // Polling a rejected tip again neither recompiles nor re-reports it.
    expect(await watcher.triggerNow()).toEqual({ status: 'unchanged', sha: bad });
    expect(compile.calls).toEqual([first, second, bad]);

    const fixed = await repo.commit({ 'roles/a.yaml': 'kind: Role\ninvalid: false\n' }, 'fix it');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: fixed });
    expect(watcher.current?.sha).toBe(fixed);
    expect(watcher.lastAttempt).toMatchObject({ sha: fixed, ok: true });
    expect(bundles).toEqual([first, second, fixed]);
    expect(rejected).toEqual([bad]);
    expect(watcher.failures).toBe(1);
  });

  it('ignores uncommitted edits in the working tree', async () => {
    const { repo, compile, watcher } = await localWatcher();
    const sha = await repo.commit({ 'a.yaml': 'a: 1\n' });
    await watcher.triggerNow();
    await repo.scribble('a.yaml', 'invalid: true\n');
    await repo.scribble('b.yaml', 'b: 1\n');
    expect(await watcher.triggerNow()).toEqual({ status: 'unchanged', sha });
    expect(watcher.current?.bundle).toEqual({ sha, files: ['a.yaml'] });
    expect(compile.calls).toEqual([sha]);
  });

  it('coalesces concurrent triggers and compiles each tip once', async () => {
    const { repo, compile, watcher } = await localWatcher();
    const sha = await repo.commit({ 'a.yaml': 'a: 1\n' });
    const results = await Promise.all(Array.from({ length: 10 }, () => watcher.triggerNow()));
    expect(new Set(results.map((r) => r.status))).toEqual(new Set(['applied']));
    expect(compile.calls).toEqual([sha]);
  });

  it('runs again after an in-flight run when triggered during it, so a push is never missed', async () => {
    const repo = await makeRepo();
    const first = await repo.commit({ 'a.yaml': 'a: 1\n' });
    const real = new RepoSource({ kind: 'local', dir: repo.dir });
    let release: () => void = () => undefined;
    let heads = 0;
    // The first head() is held open; a commit lands and a trigger arrives while it is.
    const source: WatchSource = {
      describe: () => 'test',
      head: async (b) => {
        const sha = await real.head(b);
        if (heads++ === 0) await new Promise<void>((r) => (release = r));
        return sha;
      },
      commitInfo: (s) => real.commitInfo(s),
      readTree: (s) => real.readTree(s),
    };
    const compile = fakeCompiler();
    const watcher = new RepoWatcher({ source, branch: 'main', intervalMs: 60_000, compile, logger: silentLogger });
    const during = watcher.triggerNow();
    await new Promise((r) => setTimeout(r, 20));
    const second = await repo.commit({ 'a.yaml': 'a: 2\n' });
    const after = [watcher.triggerNow(), watcher.triggerNow(), watcher.triggerNow()];
    release();
    expect(await during).toMatchObject({ status: 'applied', sha: first });
    const later = await Promise.all(after);
    expect(later.every((r) => r === later[0])).toBe(true);
    expect(later[0]).toMatchObject({ status: 'applied', sha: second });
    expect(heads).toBe(2);
  });

  it('makes an older good commit current again when the branch is reset to it', async () => {
    const { repo, watcher } = await localWatcher();
    const first = await repo.commit({ 'a.yaml': 'a: 1\n' });
    await watcher.triggerNow();
    const second = await repo.commit({ 'a.yaml': 'a: 2\n' });
    await watcher.triggerNow();
    expect(watcher.current?.sha).toBe(second);
    await repo.reset(first);
    const event = nextEvent<[{ sha: string }, string | undefined]>(watcher, 'bundle');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: first });
    expect(await event).toEqual([expect.objectContaining({ sha: first }), second]);
    expect(watcher.current?.sha).toBe(first);
  });

  it('returns to the bundle in force without recompiling when a rejected tip is reverted', async () => {
    const { repo, compile, watcher } = await localWatcher();
    const good = await repo.commit({ 'a.yaml': 'a: 1\n' });
    await watcher.triggerNow();
    await repo.commit({ 'a.yaml': 'invalid: true\n' });
    await watcher.triggerNow();
    await repo.reset(good);
    expect(await watcher.triggerNow()).toEqual({ status: 'unchanged', sha: good });
    expect(watcher.lastAttempt).toMatchObject({ sha: good, ok: true });
    expect(compile.calls).toHaveLength(2);
  });

  it('polls on its own and stops cleanly', async () => {
    const repo = await makeRepo();
    const first = await repo.commit({ 'a.yaml': 'a: 1\n' });
    const watcher = new RepoWatcher({
      source: new RepoSource({ kind: 'local', dir: repo.dir }),
      branch: 'main',
      intervalMs: 25,
      compile: fakeCompiler(),
      logger: silentLogger,
    });
    const firstEvent = nextEvent<[{ sha: string }]>(watcher, 'bundle');
    watcher.start();
    expect((await firstEvent)[0].sha).toBe(first);
    const secondEvent = nextEvent<[{ sha: string }]>(watcher, 'bundle');
    const second = await repo.commit({ 'a.yaml': 'a: 2\n' });
    expect((await secondEvent)[0].sha).toBe(second);
    await watcher.stop();
    await repo.commit({ 'a.yaml': 'a: 3\n' });
    await new Promise((r) => setTimeout(r, 100));
    expect(watcher.current?.sha).toBe(second);
  });

  it('reports a crashing compiler, or a throwing listener, without losing the current bundle', async () => {
    const repo = await makeRepo();
    const good = await repo.commit({ 'a.yaml': 'a: 1\n' });
    let crash = false;
    const inner = fakeCompiler();
    const watcher = new RepoWatcher({
      source: new RepoSource({ kind: 'local', dir: repo.dir }),
      branch: 'main',
      intervalMs: 60_000,
      compile: (files, commit) => {
        if (crash) throw new Error('boom');
        return inner(files, commit);
      },
      logger: silentLogger,
    });
    watcher.on('bundle', () => {
      throw new Error('listener bug');
    });
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: good });
    crash = true;
    await repo.commit({ 'a.yaml': 'a: 2\n' });
    expect(await watcher.triggerNow()).toMatchObject({ status: 'rejected', diagnostics: [expect.objectContaining({ code: 'compiler-crashed', message: 'boom' })] });
    expect(watcher.current?.sha).toBe(good);
  });

  it('rejects a commit with a non-UTF-8 file as a diagnostic on that file', async () => {
    const { repo, watcher } = await localWatcher();
    await repo.commit({ 'a.yaml': 'a: 1\n' });
    await watcher.triggerNow();
    const bad = await repo.commit({ 'b.yaml': new Uint8Array([0xff, 0xfe, 0x00]) });
    expect(await watcher.triggerNow()).toMatchObject({ status: 'rejected', sha: bad, diagnostics: [expect.objectContaining({ file: 'b.yaml', code: 'invalid-encoding' })] });
  });

  it('compiles with the real config compiler: the hospital repository, a broken change, the fix', async () => {
    const repo = await makeRepo();
    const watcher = new RepoWatcher({
      source: new RepoSource({ kind: 'local', dir: repo.dir }),
      branch: 'main',
      intervalMs: 60_000,
      compile: configCompiler(),
      logger: silentLogger,
    });
    const good = await repo.commit({ ...HOSPITAL_REPO, 'README.md': '# config\n' }, 'Initial policy');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: good });
    const bundle = watcher.current!.bundle;
    expect(bundle.version).toBe(good);
    expect(bundle.message).toBe('Initial policy\n');
    expect(bundle.author).toMatchObject({ name: 'Dana Privacy', email: 'dana@hospital.example' });
    expect(bundle.roles.length).toBeGreaterThan(0);

    const broken = HOSPITAL_REPO['listeners.yaml']!.replace('target: clinical-dev', 'target: no-such-target');
    const bad = await repo.commit({ 'listeners.yaml': broken }, 'Point dev listener at a typo');
    const result = await watcher.triggerNow();
    expect(result).toMatchObject({ status: 'rejected', sha: bad });
    expect(watcher.lastAttempt?.diagnostics.some((d) => d.severity === 'error' && d.file === 'listeners.yaml')).toBe(true);
    expect(watcher.current?.sha).toBe(good);

    const fixed = await repo.commit({ 'listeners.yaml': HOSPITAL_REPO['listeners.yaml']! }, 'Revert typo');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: fixed });
    expect(watcher.current?.bundle.version).toBe(fixed);
  });

  it('rejects a commit whose policy tests fail, or whose catalog snapshot is missing or broken', async () => {
    const repo = await makeRepo();
    const watcher = new RepoWatcher({ source: new RepoSource({ kind: 'local', dir: repo.dir }), branch: 'main', intervalMs: 60_000, compile: configCompiler(), logger: silentLogger });
    const good = await repo.commit({ ...HOSPITAL_REPO }, 'Initial policy');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: good });

    // Schema-valid, references fine — but analytics would now see MRNs in the clear, which a test forbids.
    const unmasked = HOSPITAL_REPO['roles/clinical-analytics.yaml']!.replace('- { phiClass: direct-identifier, action: mask }', '- { phiClass: direct-identifier, action: allow }');
    expect(unmasked).not.toBe(HOSPITAL_REPO['roles/clinical-analytics.yaml']);
    const bad = await repo.commit({ 'roles/clinical-analytics.yaml': unmasked }, 'Unmask identifiers');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'rejected', sha: bad });
    expect(watcher.lastAttempt?.diagnostics).toContainEqual(expect.objectContaining({ severity: 'error', code: 'policy-test-failed', file: 'tests/analytics.yaml', message: expect.stringMatching(/^analytics sees hashed MRNs: expected mrn masked/) }));
    expect(watcher.current?.sha).toBe(good);

    await repo.reset(good);
    const noCatalog = await repo.commit({ 'catalog/clinical.json': null }, 'Drop the catalog');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'rejected', sha: noCatalog });
    expect(watcher.lastAttempt?.diagnostics).toContainEqual(expect.objectContaining({ code: 'policy-test-failed', message: expect.stringContaining('no catalog snapshot for target "clinical"') }));

    const garbled = await repo.commit({ 'catalog/clinical.json': '{ not json' }, 'Garble the catalog');
    expect(await watcher.triggerNow()).toMatchObject({ status: 'rejected', sha: garbled });
    expect(watcher.lastAttempt?.diagnostics).toContainEqual(expect.objectContaining({ file: 'catalog/clinical.json', code: 'catalog-invalid' }));
    expect(watcher.current?.sha).toBe(good);
  });
});

describe('RepoWatcher over HTTP (git http-backend)', () => {
  it('follows a token-protected remote, and keeps the current bundle when the token stops working', async () => {
    const root = await tempDir();
    const upstream = await makeRepo('main', path.join(root, 'config'));
    const first = await upstream.commit({ 'a.yaml': 'a: 1\n' });
    const server = await startGitHttpServer(root, 'good-token');
    const cacheDir = await tempDir();
    try {
      const watcher = new RepoWatcher({
        source: new RepoSource({ kind: 'remote', url: server.url('config'), branch: 'main', token: 'good-token', cacheDir }),
        branch: 'main',
        intervalMs: 60_000,
        compile: fakeCompiler(),
        logger: silentLogger,
      });
      expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: first });
      const bad = await upstream.commit({ 'a.yaml': 'invalid: true\n' });
      expect(await watcher.triggerNow()).toMatchObject({ status: 'rejected', sha: bad });
      const fixed = await upstream.commit({ 'a.yaml': 'a: 2\n' });
      expect(await watcher.triggerNow()).toMatchObject({ status: 'applied', sha: fixed });

      // Same cache, rotated-away token: the fetch fails, the failure is visible, the bundle stays.
      const revoked = new RepoWatcher({
        source: new RepoSource({ kind: 'remote', url: server.url('config'), branch: 'main', token: 'old-token', cacheDir }),
        branch: 'main',
        intervalMs: 60_000,
        compile: fakeCompiler(),
        logger: silentLogger,
      });
      revoked.current = watcher.current;
      const failure = nextEvent<[{ stage: string; message: string }]>(revoked, 'sourceError');
      await upstream.commit({ 'a.yaml': 'a: 3\n' });
      const result = await revoked.triggerNow();
      expect(result).toMatchObject({ status: 'error', stage: 'fetch' });
      expect((await failure)[0].message).toMatch(/401/);
      expect(revoked.lastError).toMatchObject({ stage: 'fetch' });
      expect(revoked.failures).toBe(1);
      expect(revoked.current?.sha).toBe(fixed);
      expect(JSON.stringify(revoked.lastError)).not.toContain('old-token');
    } finally {
      await server.close();
    }
  });
});
