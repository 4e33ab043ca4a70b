import fs from 'node:fs';
import path from 'node:path';
import git from 'isomorphic-git';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigFileError, RepoSource } from './repo-source.js';
import { makeRepo, removeTemps, startGitHttpServer, tempDir } from './test-support.js';

afterAll(removeTemps);

describe('RepoSource (local)', () => {
  it('reads the committed YAML and catalog snapshots of a commit, recursively and in path order', async () => {
    const repo = await makeRepo();
    const sha = await repo.commit({
      'targets.yaml': 'kind: Target\n',
      'roles/analytics.yml': 'kind: Role\n',
      'roles/deep/nested/billing.YAML': 'kind: Role # upper-case extension\n',
      'README.md': '# not config\n',
      'scripts/check.sh': 'echo hi\n',
      'catalog/clinical.json': '{"relations":{}}',
      'catalog/nested/other.json': '{}',
      'package.json': '{}',
    });
    const source = new RepoSource({ kind: 'local', dir: repo.dir });
    expect(await source.head('main')).toBe(sha);
    const files = await source.readTree(sha);
    expect(Object.keys(files)).toEqual(['catalog/clinical.json', 'roles/analytics.yml', 'roles/deep/nested/billing.YAML', 'targets.yaml']);
    expect(files['targets.yaml']).toBe('kind: Target\n');
  });

  it('reports commit metadata, with a committer date usable by the compiler', async () => {
    const repo = await makeRepo();
    const first = await repo.commit({ 'a.yaml': 'a: 1\n' }, 'first');
    const second = await repo.commit({ 'a.yaml': 'a: 2\n' }, 'Mask phone numbers\n\nLonger body.');
    const info = await new RepoSource({ kind: 'local', dir: repo.dir }).commitInfo(second);
    expect(info.sha).toBe(second);
    expect(info.parents).toEqual([first]);
    expect(info.author).toMatchObject({ name: 'Dana Privacy', email: 'dana@hospital.example' });
    expect(info.committer).toMatchObject({ name: 'Merge Bot', email: 'bot@hospital.example' });
    expect(info.message).toBe('Mask phone numbers\n\nLonger body.\n');
    expect(info.committedAt.getTime()).toBe(info.committer.timestamp * 1000);
    expect(info.author.timestamp).toBeLessThan(info.committer.timestamp);
  });

  it('ignores the working tree and the index: only commits count', async () => {
    const repo = await makeRepo();
    const sha = await repo.commit({ 'policy.yaml': 'v: committed\n' });
    await repo.scribble('policy.yaml', 'v: edited but not committed\n');
    await repo.scribble('new.yaml', 'v: never added\n');
    await repo.scribble('staged.yaml', 'v: staged only\n');
    await git.add({ fs, dir: repo.dir, filepath: 'staged.yaml' });
    const source = new RepoSource({ kind: 'local', dir: repo.dir });
    expect(await source.head('main')).toBe(sha);
    expect(await source.readTree(sha)).toEqual({ 'policy.yaml': 'v: committed\n' });
  });

  it('reads older commits as they were, including deleted files', async () => {
    const repo = await makeRepo();
    const first = await repo.commit({ 'a.yaml': 'a: 1\n', 'b.yaml': 'b: 1\n' });
    const second = await repo.commit({ 'b.yaml': null, 'a.yaml': 'a: 2\n' });
    const source = new RepoSource({ kind: 'local', dir: repo.dir });
    expect(await source.readTree(first)).toEqual({ 'a.yaml': 'a: 1\n', 'b.yaml': 'b: 1\n' });
    expect(await source.readTree(second)).toEqual({ 'a.yaml': 'a: 2\n' });
  });

  it('reads a bare repository', async () => {
    const repo = await makeRepo();
    const sha = await repo.commit({ 'a.yaml': 'a: 1\n' });
    const bare = await tempDir();
    // A bare repository is the .git directory on its own: objects and refs, no working tree.
    await fs.promises.cp(path.join(repo.dir, '.git'), bare, { recursive: true });
    const source = new RepoSource({ kind: 'local', dir: bare });
    expect(await source.head('main')).toBe(sha);
    expect(await source.readTree(sha)).toEqual({ 'a.yaml': 'a: 1\n' });
  });

  it('turns a non-UTF-8 file into a ConfigFileError naming the file', async () => {
    const repo = await makeRepo();
    const sha = await repo.commit({ 'ok.yaml': 'a: 1\n', 'latin1.yaml': new Uint8Array([0x61, 0x3a, 0x20, 0xe9, 0x0a]) });
    const err = await new RepoSource({ kind: 'local', dir: repo.dir }).readTree(sha).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigFileError);
    expect(err).toMatchObject({ file: 'latin1.yaml', code: 'invalid-encoding' });
  });

  it('fails clearly for a missing branch, a non-repository and a bad branch name', async () => {
    const repo = await makeRepo();
    await repo.commit({ 'a.yaml': 'a: 1\n' });
    const source = new RepoSource({ kind: 'local', dir: repo.dir });
    await expect(source.head('release')).rejects.toThrow(/release/);
    await expect(source.head('../../etc')).rejects.toThrow(/invalid branch name/);
    await expect(new RepoSource({ kind: 'local', dir: await tempDir() }).head('main')).rejects.toThrow(/not a git repository/);
  });
});

describe('RepoSource (remote, over git http-backend)', () => {
  it('fetches with the token, reads the tip, then follows new commits', async () => {
    const root = await tempDir();
    const upstream = await makeRepo('main', path.join(root, 'config'));
    const first = await upstream.commit({ 'a.yaml': 'a: 1\n', 'docs/readme.md': 'x\n' });
    const server = await startGitHttpServer(root, 's3cret-token');
    try {
      const source = new RepoSource({ kind: 'remote', url: server.url('config'), branch: 'main', token: 's3cret-token', cacheDir: await tempDir() });
      expect(await source.head()).toBe(first);
      expect(await source.readTree(first)).toEqual({ 'a.yaml': 'a: 1\n' });
      expect((await source.commitInfo(first)).message).toBe('update config\n');
      // The first request is challenged, the retry with the token passes.
      expect(server.requests.slice(0, 2).map((r) => r.status)).toEqual([401, 200]);

      const second = await upstream.commit({ 'a.yaml': 'a: 2\n', 'b.yml': 'b: 1\n' });
      expect(await source.head('main')).toBe(second);
      expect(await source.readTree(second)).toEqual({ 'a.yaml': 'a: 2\n', 'b.yml': 'b: 1\n' });

      // A force-push back to an older commit is followed too.
      await upstream.reset(first);
      expect(await source.head()).toBe(first);
      expect(await source.readTree(first)).toEqual({ 'a.yaml': 'a: 1\n' });
    } finally {
      await server.close();
    }
  });

  it('surfaces a wrong or missing token as an HTTP 401, without echoing the token', async () => {
    const root = await tempDir();
    const upstream = await makeRepo('main', path.join(root, 'config'));
    await upstream.commit({ 'a.yaml': 'a: 1\n' });
    const server = await startGitHttpServer(root, 'right-token');
    try {
      const wrong = new RepoSource({ kind: 'remote', url: server.url('config'), branch: 'main', token: 'wrong-token', cacheDir: await tempDir() });
      const err = (await wrong.head().catch((e: unknown) => e)) as Error;
      expect(err.message).toMatch(/401/);
      expect(err.message).not.toContain('wrong-token');
      const none = new RepoSource({ kind: 'remote', url: server.url('config'), branch: 'main', cacheDir: await tempDir() });
      await expect(none.head()).rejects.toThrow(/401/);
    } finally {
      await server.close();
    }
  });

  it('reports a missing branch and strips credentials from its description', async () => {
    const root = await tempDir();
    const upstream = await makeRepo('main', path.join(root, 'config'));
    await upstream.commit({ 'a.yaml': 'a: 1\n' });
    const server = await startGitHttpServer(root);
    try {
      const source = new RepoSource({ kind: 'remote', url: server.url('config'), branch: 'release', cacheDir: await tempDir() });
      await expect(source.head()).rejects.toThrow(/release/);
      const withUser = new RepoSource({ kind: 'remote', url: 'https://user:pw@git.example/config.git', branch: 'main', cacheDir: '/nonexistent' });
      expect(withUser.describe()).toBe('https://git.example/config.git');
    } finally {
      await server.close();
    }
  });

  it('gives up on a server that never answers, within fetchTimeoutMs', async () => {
    const http = await import('node:http');
    const hang = http.createServer(() => undefined);
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const { port } = hang.address() as { port: number };
    try {
      const source = new RepoSource({ kind: 'remote', url: `http://127.0.0.1:${port}/config`, branch: 'main', cacheDir: await tempDir(), fetchTimeoutMs: 300 });
      const started = Date.now();
      await expect(source.head()).rejects.toThrow(/timed out/);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      hang.closeAllConnections();
      await new Promise((r) => hang.close(r));
    }
  });
});
