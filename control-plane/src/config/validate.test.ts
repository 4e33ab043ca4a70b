import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOSPITAL_REPO } from './example-repo.js';
import { compileBundle, loadConfigDir, loadConfigFiles, validateDocuments, type CompileResult, type Diagnostic } from './index.js';

const COMMIT = {
  sha: '3f786850e387550fdab836ed7e6dc881de23001b',
  author: { name: 'A', email: 'a@hospital.example' },
  committer: { name: 'C', email: 'c@hospital.example' },
  message: 'change',
  committedAt: new Date('2024-05-01T12:00:00Z'),
};

/** The hospital repository with some files replaced (text) or removed (null). */
function repo(changes: Record<string, string | null>): Record<string, string> {
  const files: Record<string, string> = { ...HOSPITAL_REPO };
  for (const [f, t] of Object.entries(changes)) {
    if (t === null) delete files[f];
    else files[f] = t;
  }
  return files;
}

function compileWith(changes: Record<string, string | null>): CompileResult {
  return compileBundle(loadConfigFiles(repo(changes)), COMMIT);
}

/** Edits one file of the example; fails loudly if the example no longer contains `from`. */
function edit(file: string, from: string, to: string): Record<string, string> {
  const text = HOSPITAL_REPO[file]!;
  expect(text).toContain(from);
  return { [file]: text.replace(from, to) };
}

function lineOf(text: string, needle: string): number {
  const i = text.indexOf(needle);
  expect(i).toBeGreaterThanOrEqual(0);
  return text.slice(0, i).split('\n').length;
}

/** Asserts there is no bundle and returns the errors with `code`. */
function failsWith(result: CompileResult, code: string): Diagnostic[] {
  expect(result.bundle).toBeUndefined();
  const hits = result.diagnostics.filter((d) => d.code === code && d.severity === 'error');
  expect(hits, `no ${code} in ${JSON.stringify(result.diagnostics, null, 1)}`).not.toHaveLength(0);
  return hits;
}

describe('validation failures', () => {
  it('reports a YAML syntax error with file and line, read from disk', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-config-bad-'));
    try {
      const files = repo({ 'roles/billing.yaml': HOSPITAL_REPO['roles/billing.yaml']!.replace('maxRows: 500', 'maxRows: 500: 600') });
      for (const [file, text] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
        await writeFile(path.join(dir, file), text);
      }
      const result = compileBundle(await loadConfigDir(dir), COMMIT);
      const [d] = failsWith(result, 'yaml-syntax');
      expect(d!.file).toBe('roles/billing.yaml');
      expect(d!.line).toBe(lineOf(HOSPITAL_REPO['roles/billing.yaml']!, 'maxRows: 500'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports an unknown key with a suggestion', () => {
    const [d] = failsWith(compileWith(edit('targets.yaml', 'host: db.clinical.internal', 'hostname: db.clinical.internal')), 'unknown-field');
    expect(d).toMatchObject({ file: 'targets.yaml', path: 'spec.postgres.hostname', line: lineOf(HOSPITAL_REPO['targets.yaml']!, 'host: db.clinical') });
    expect(d!.message).toContain('did you mean "host"');
    // The missing host is reported too, at the object that lacks it.
    expect(compileWith(edit('targets.yaml', 'host: db.clinical.internal', 'hostname: x')).diagnostics.map((x) => x.message)).toContain('missing required field "host"');
  });

  it('rejects a literal password and a value where a reference belongs', () => {
    const [d] = failsWith(
      compileWith(edit('targets.yaml', 'passwordRef: env:WARDEN_CLINICAL_PASSWORD', 'password: hunter2')),
      'literal-secret',
    );
    expect(d).toMatchObject({ file: 'targets.yaml', path: 'spec.postgres.password' });
    expect(d!.message).toContain('passwordRef');
    expect(d!.message).not.toContain('hunter2');
    const [r] = failsWith(compileWith(edit('targets.yaml', 'passwordRef: env:WARDEN_CLINICAL_PASSWORD', 'passwordRef: hunter2')), 'secret-ref');
    expect(r!.path).toBe('spec.postgres.passwordRef');
    const [k] = failsWith(compileWith(edit('masking.yaml', 'keyRef: env:WARDEN_HASH_KEY', 'key: s3cr3t')), 'literal-secret');
    expect(k!.path).toBe('spec.hash.key');
  });

  it('requires a key for hash strategies', () => {
    const [d] = failsWith(compileWith(edit('masking.yaml', 'keyRef: env:WARDEN_HASH_KEY, ', '')), 'hash-key-required');
    expect(d).toMatchObject({ file: 'masking.yaml', path: 'spec.hash' });
  });

  it('reports a role naming an unknown target', () => {
    const [d] = failsWith(compileWith(edit('roles/oncall-dba.yaml', 'targets: [clinical, clinical-dev]', 'targets: [clinical, clinical-stage]')), 'unknown-target');
    expect(d).toMatchObject({ file: 'roles/oncall-dba.yaml', path: 'spec.targets[1]', line: 5 });
    expect(d!.message).toContain('clinical-stage');
  });

  it('reports a group mapping naming an unknown role', () => {
    const [d] = failsWith(compileWith(edit('identity.yaml', 'role: care-coordination', 'role: care-coord')), 'unknown-role');
    expect(d).toMatchObject({ file: 'identity.yaml', path: 'spec.groupMappings[2].role', line: lineOf(HOSPITAL_REPO['identity.yaml']!, 'care-coordinators') });
  });

  it('reports an unknown masking strategy', () => {
    const [d] = failsWith(compileWith(edit('roles/clinical-analytics.yaml', 'strategy: notes-detect', 'strategy: notes-scrub')), 'unknown-strategy');
    expect(d).toMatchObject({ file: 'roles/clinical-analytics.yaml', path: 'spec.tables[1].columns[0].mask.strategy' });
  });

  it('reports classified PHI a role can read unmasked', () => {
    const result = compileWith(edit('roles/clinical-analytics.yaml', '        - { column: zip, action: mask }\n', ''));
    const [d] = failsWith(result, 'unmasked-phi');
    expect(d).toMatchObject({ file: 'roles/clinical-analytics.yaml', path: 'spec.tables[0]' });
    for (const part of ['clinical-analytics', 'clinic.patients', '"zip"', 'quasi-identifier']) expect(d!.message).toContain(part);

    // A role that allows by default: fine while clinic.* is denied first, an error once it is not.
    const dba = HOSPITAL_REPO['roles/oncall-dba.yaml']!;
    const allowByDefault = dba.replace('maxRows: 100', 'maxRows: 100\n  defaultAction: allow');
    expect(compileWith({ 'roles/oncall-dba.yaml': allowByDefault }).diagnostics).toEqual([]);
    const [o] = failsWith(compileWith({ 'roles/oncall-dba.yaml': allowByDefault.replace('    - { table: "clinic.*", defaultAction: deny }\n', '') }), 'unmasked-phi');
    expect(o).toMatchObject({ path: 'spec.defaultAction' });
  });

  it('reports contradictory rules', () => {
    const [d] = failsWith(
      compileWith(edit('roles/billing.yaml', '        - { column: insurer, action: allow }\n', '        - { column: insurer, action: allow }\n        - { column: insurer, action: deny }\n')),
      'contradictory-rules',
    );
    expect(d).toMatchObject({ file: 'roles/billing.yaml', path: 'spec.tables[0].columns[2]' });
    expect(d!.message).toContain('tables[0].columns[1]');
  });

  it('requires exactly one Identity document', () => {
    const twice = compileWith({ 'identity-2.yaml': HOSPITAL_REPO['identity.yaml']! });
    const [d] = failsWith(twice, 'identity-count');
    expect(d).toMatchObject({ file: 'identity.yaml', path: '' });
    expect(d!.message).toContain('identity-2.yaml');
    const none = compileWith({ 'identity.yaml': null });
    failsWith(none, 'identity-count');
    // Without the Identity, its group mappings are gone too, so nothing else is wrong.
    expect(none.diagnostics.filter((x) => x.severity === 'error')).toHaveLength(1);
  });

  it('reports unknown kinds and apiVersions', () => {
    const [k] = failsWith(compileWith(edit('masking.yaml', 'kind: MaskingStrategy', 'kind: MaskStrategy')), 'unknown-kind');
    expect(k!.message).toContain('MaskingStrategy');
    expect(k).toMatchObject({ path: 'kind', line: 2 });
    failsWith(compileWith(edit('approvals.yaml', 'apiVersion: warden.dev/v1', 'apiVersion: warden.dev/v2')), 'unknown-api-version');
  });

  it('enforces transport security', () => {
    failsWith(compileWith(edit('listeners.yaml', '    tls: { certFile: /etc/warden/tls.crt, keyFile: /etc/warden/tls.key }\n', '    maxMessageBytes: 65536\n')), 'listener-tls-required');
    failsWith(compileWith(edit('targets.yaml', '    tls: { mode: verify-full, caFile: /etc/warden/db-ca.crt }\n', '')), 'target-tls-required');
    const [alg] = failsWith(compileWith(edit('identity.yaml', 'algorithms: [RS256, ES256]', 'algorithms: [RS256, HS256]')), 'invalid-value');
    expect(alg).toMatchObject({ path: 'spec.issuers[0].algorithms[1]' });
    expect(alg!.message).toContain('never accepted');
    failsWith(compileWith(edit('identity.yaml', 'issuer: https://login.partner.example', 'issuer: http://login.partner.example')), 'insecure-issuer');
  });

  it('reports a MASK that ends up without any strategy', () => {
    const [d] = failsWith(
      compileWith(edit('classification/clinic.yaml', '{ pattern: clinic.patients.dob, phiClass: quasi-identifier, defaultMask: { strategy: generalize-date } }', '{ pattern: clinic.patients.dob, phiClass: quasi-identifier }')),
      'mask-unresolved',
    );
    expect(d).toMatchObject({ file: 'roles/clinical-analytics.yaml', path: 'spec.tables[0].columns[1]' });
    expect(d!.message).toContain('clinic.patients.dob');
  });

  it('refuses to guess when one rule covers columns with different default masks it cannot tell apart', () => {
    const [d] = failsWith(
      compileWith(edit('roles/clinical-analytics.yaml', '    - table: clinic.patients\n', '    - table: "clinic.pat*"\n')),
      'mask-ambiguous',
    );
    expect(d!.message).toContain('hash-mrn');
  });

  it('reports duplicate names and rule ids', () => {
    const [d] = failsWith(compileWith({ 'roles/billing-2.yaml': HOSPITAL_REPO['roles/billing.yaml']! }), 'duplicate-name');
    expect(d).toMatchObject({ file: 'roles/billing.yaml', path: 'spec.name' });
    failsWith(compileWith(edit('masking.yaml', 'name: ssn-last4', 'name: partial')), 'duplicate-name');
    failsWith(compileWith(edit('roles/billing.yaml', 'id: billing-last-name', 'id: billing-patients')), 'duplicate-id');
  });

  it('checks masking parameters and detector patterns', () => {
    const [p] = failsWith(compileWith(edit('roles/billing.yaml', 'keepSuffix: 2, maskChar: "x"', 'keepSufix: 2')), 'invalid-param');
    expect(p!.path).toBe('spec.tables[1].columns[1].mask.params.keepSufix');
    failsWith(compileWith(edit('roles/billing.yaml', 'maskChar: "x"', 'maskChar: "xy"')), 'invalid-param');
    const [re] = failsWith(compileWith(edit('masking.yaml', 'detectors: [ssn, phone, email, mrn]', "detectors: [ssn]\n    customPatterns: ['(?<=MRN)\\d+']")), 'invalid-value');
    expect(re!.message).toContain('RE2');
  });

  it('rejects a commit that is not a full SHA', () => {
    failsWith(compileBundle(loadConfigFiles({ ...HOSPITAL_REPO }), { ...COMMIT, sha: 'main' }), 'invalid-commit');
  });

  it('reports every problem at once and warnings do not block the bundle', () => {
    const many = compileWith({
      ...edit('targets.yaml', 'passwordRef: env:WARDEN_CLINICAL_PASSWORD', 'password: x'),
      ...edit('identity.yaml', 'role: billing', 'role: billings'),
    });
    expect(many.diagnostics.map((d) => d.code).sort()).toEqual(['literal-secret', 'unknown-role']);
    const warned = compileWith(edit('listeners.yaml', 'address: 127.0.0.1', 'address: 10.0.0.5'));
    expect(warned.diagnostics.map((d) => [d.severity, d.code])).toEqual([['warning', 'plaintext-listener']]);
    expect(warned.bundle).toBeDefined();
  });

  it('works on documents built without YAML source, as the agent builds them', () => {
    const docs = loadConfigFiles({ ...HOSPITAL_REPO }).map(({ lineAt: _, ...d }) => d);
    expect(compileBundle(docs, COMMIT).bundle).toBeDefined();
    const broken = docs.map((d) => (d.kind === 'Listener' ? { ...d, spec: { ...(d.spec as object), target: 'nowhere' } } : d));
    expect(validateDocuments(broken)[0]).toMatchObject({ code: 'unknown-target', file: 'listeners.yaml', line: 1, path: 'spec.target' });
  });

  it('validateDocuments gives the same diagnostics without compiling', () => {
    const docs = loadConfigFiles(repo(edit('roles/billing.yaml', 'column: insurer, action: allow', 'column: insurer, action: allow, mask: { strategy: redact }')));
    expect(validateDocuments(docs)).toMatchObject([{ code: 'invalid-value', path: 'spec.tables[0].columns[1].mask' }]);
  });
});
