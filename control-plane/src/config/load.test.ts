import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isConfigPath, loadConfigDir, loadConfigFiles, parseConfigText } from './load.js';

const TWO_DOCS = `# comment
apiVersion: warden.dev/v1
kind: Target
spec:
  name: a
  postgres:
    host: 127.0.0.1
---
---
apiVersion: warden.dev/v1
kind: Role
spec:
  name: r
  tables:
    - table: clinic.patients
      columns:
        - { column: ssn, action: deny }
`;

describe('parseConfigText', () => {
  it('keeps each document with its file, index and line, skipping empty ones', () => {
    const docs = parseConfigText(TWO_DOCS, 'x.yaml');
    expect(docs.map((d) => [d.kind, d.index, d.line, d.file])).toEqual([
      ['Target', 0, 2, 'x.yaml'],
      ['Role', 2, 10, 'x.yaml'],
    ]);
    expect(docs[1]!.spec).toMatchObject({ name: 'r' });
    expect(docs[0]!.problems).toBeUndefined();
  });

  it('maps paths inside a document to lines', () => {
    const role = parseConfigText(TWO_DOCS, 'x.yaml')[1]!;
    expect(role.lineAt!(['spec', 'tables', 0, 'columns', 0])).toBe(17);
    expect(role.lineAt!(['spec', 'tables', 0, 'columns', 0, 'action'])).toBe(17);
    expect(role.lineAt!(['spec', 'name'])).toBe(13);
    // Paths that do not exist resolve to their deepest existing ancestor.
    expect(role.lineAt!(['spec', 'tables', 0, 'nope', 3])).toBe(15);
  });

  it('turns syntax errors into problems and keeps parsing later documents', () => {
    const docs = parseConfigText(`kind: Target\nspec: { name: [1, }\n---\napiVersion: warden.dev/v1\nkind: Role\nspec: {}\n`, 'bad.yaml');
    expect(docs).toHaveLength(2);
    expect(docs[0]!.problems![0]).toMatchObject({ severity: 'error', code: 'yaml-syntax', file: 'bad.yaml', line: 2 });
    expect(docs[1]).toMatchObject({ kind: 'Role', index: 1, line: 4 });
  });

  it('rejects duplicate keys rather than silently keeping the last', () => {
    const [doc] = parseConfigText('apiVersion: warden.dev/v1\nkind: Role\nkind: Target\nspec: {}\n', 'dup.yaml');
    expect(doc!.problems![0]).toMatchObject({ code: 'yaml-syntax', line: 3 });
  });

  it('checks the document envelope', () => {
    const [doc] = parseConfigText('kind: Role\nmetadata: { name: x }\nspec: {}\n', 'env.yaml');
    expect(doc!.problems!.map((p) => [p.code, p.path, p.line])).toEqual([
      ['unknown-field', 'metadata', 2],
      ['missing-field', 'apiVersion', 1],
    ]);
    const [list] = parseConfigText('- a\n- b\n', 'list.yaml');
    expect(list!.problems![0]).toMatchObject({ code: 'document-shape', line: 1 });
    expect(parseConfigText('# nothing here\n', 'empty.yaml')).toEqual([]);
    expect(parseConfigText('', 'empty.yaml')).toEqual([]);
  });
});

describe('loading a repository', () => {
  it('takes only YAML outside hidden folders, in path order', () => {
    expect(isConfigPath('roles/a.yaml')).toBe(true);
    expect(isConfigPath('roles/a.YML')).toBe(true);
    expect(isConfigPath('.github/workflows/ci.yaml')).toBe(false);
    expect(isConfigPath('roles/.draft.yaml')).toBe(false);
    expect(isConfigPath('README.md')).toBe(false);
    const doc = (name: string) => `apiVersion: warden.dev/v1\nkind: Role\nspec: { name: ${name} }\n`;
    const docs = loadConfigFiles({ './z.yaml': doc('z'), 'a/b.yml': doc('b'), '.hidden/c.yaml': doc('c'), 'notes.txt': 'x' });
    expect(docs.map((d) => [d.file, (d.spec as { name: string }).name])).toEqual([
      ['a/b.yml', 'b'],
      ['z.yaml', 'z'],
    ]);
  });

  it('reads a directory recursively with paths relative to it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-load-'));
    try {
      await mkdir(path.join(dir, 'roles/nested'), { recursive: true });
      await mkdir(path.join(dir, '.git'), { recursive: true });
      await writeFile(path.join(dir, 'roles/nested/r.yaml'), TWO_DOCS);
      await writeFile(path.join(dir, '.git/config.yaml'), TWO_DOCS);
      await writeFile(path.join(dir, 'top.yml'), 'apiVersion: warden.dev/v1\nkind: Identity\nspec: {}\n');
      const docs = await loadConfigDir(dir);
      expect(docs.map((d) => `${d.file}#${d.index}`)).toEqual(['roles/nested/r.yaml#0', 'roles/nested/r.yaml#2', 'top.yml#0']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
