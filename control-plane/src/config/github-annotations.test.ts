import { describe, expect, it } from 'vitest';
import { HOSPITAL_REPO } from './example-repo.js';
import { compileBundle, formatDiagnostics, loadConfigFiles, type Diagnostic } from './index.js';

const DIAGS: Diagnostic[] = [
  { severity: 'error', file: 'roles/billing.yaml', line: 12, path: 'spec.tables[0].columns[2]', code: 'contradictory-rules', message: 'says deny here but allow in tables[0].columns[1]' },
  { severity: 'warning', file: 'odd,name:1.yaml', line: 3, path: '', code: 'plaintext-listener', message: 'line one\nline two 100%' },
  { severity: 'error', file: '', path: '', code: 'identity-count', message: 'none was found' },
];

describe('formatDiagnostics', () => {
  it('writes GitHub workflow commands, escaped', () => {
    expect(formatDiagnostics(DIAGS, 'github').split('\n')).toEqual([
      '::error file=roles/billing.yaml,line=12,title=contradictory-rules::spec.tables[0].columns[2]: says deny here but allow in tables[0].columns[1]',
      '::warning file=odd%2Cname%3A1.yaml,line=3,title=plaintext-listener::line one%0Aline two 100%25',
      '::error title=identity-count::none was found',
    ]);
  });

  it('writes text for people and json for tools', () => {
    expect(formatDiagnostics(DIAGS, 'text').split('\n')).toEqual([
      'roles/billing.yaml:12: error [contradictory-rules] spec.tables[0].columns[2]: says deny here but allow in tables[0].columns[1]',
      'odd,name:1.yaml:3: warning [plaintext-listener] line one\nline two 100%',
      '(repository): error [identity-count] none was found',
      '2 errors, 1 warning',
    ].join('\n').split('\n'));
    expect(JSON.parse(formatDiagnostics(DIAGS, 'json'))).toEqual(DIAGS);
  });

  it('annotates a real failure at its file and line', () => {
    const files = { ...HOSPITAL_REPO, 'targets.yaml': HOSPITAL_REPO['targets.yaml']!.replace('passwordRef: env:WARDEN_CLINICAL_PASSWORD', 'password: hunter2') };
    const { diagnostics } = compileBundle(loadConfigFiles(files), {
      sha: 'a'.repeat(40), author: { name: 'a', email: 'a@b' }, committer: { name: 'a', email: 'a@b' }, message: '', committedAt: new Date(0),
    });
    expect(formatDiagnostics(diagnostics, 'github')).toMatch(/^::error file=targets\.yaml,line=12,title=literal-secret::spec\.postgres\.password: "password" would put a secret/);
  });
});
