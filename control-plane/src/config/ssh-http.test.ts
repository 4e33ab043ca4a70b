/**
 * HTTP and SSH targets in the config repository: what compiles into the
 * bundle, and each mistake reported with its file, path and a clear code.
 */
import { describe, expect, it } from 'vitest';
import { PolicyAction } from '../../../proto/src/index.js';
import { HOSPITAL_REPO } from './example-repo.js';
import { compileBundle, loadConfigFiles, type CompileResult } from './index.js';

const COMMIT = {
  sha: '3f786850e387550fdab836ed7e6dc881de23001b',
  author: { name: 'A', email: 'a@hospital.example' },
  committer: { name: 'C', email: 'c@hospital.example' },
  message: 'http and ssh',
  committedAt: new Date('2024-05-01T12:00:00Z'),
};
const HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

const TARGETS = `apiVersion: warden.dev/v1
kind: Target
spec:
  name: records
  http: { baseUrl: https://records.internal:8443/v2, authorizationRef: env:RECORDS_TOKEN }
---
apiVersion: warden.dev/v1
kind: Target
spec:
  name: lab
  ssh: { host: lab.internal, user: warden, privateKeyRef: file:/run/secrets/lab, hostKeys: ["${HOST_KEY}"] }
`;
const LISTENERS = `apiVersion: warden.dev/v1
kind: Listener
spec: { name: records-https, target: records, address: 0.0.0.0, port: 8443, http: { tls: { certFile: /etc/w/api.crt, keyFile: /etc/w/api.key } } }
---
apiVersion: warden.dev/v1
kind: Listener
spec: { name: lab-ssh, target: lab, address: 0.0.0.0, port: 2222, ssh: { hostKeyFile: /etc/w/ssh_host_ed25519_key } }
`;
const ROLE = `apiVersion: warden.dev/v1
kind: Role
spec:
  name: lab-tech
  targets: [records, lab]
  http:
    routes:
      - { id: read-patients, methods: [GET], path: /api/patients/*, action: allow, masks: [{ path: "$.patients[*].ssn", mask: { strategy: redact } }] }
      - { path: /api/admin/**, action: deny }
  ssh: { shell: true, exec: true, execCommands: ["^ls( |$)"], portForwards: ["db.internal:5432"] }
`;
const APPROVAL = `apiVersion: warden.dev/v1
kind: ApprovalRule
spec:
  id: lab-risky
  match: { targets: [lab, records], sshCommands: ["^rm "], sshShell: true, httpRoutes: ["^DELETE "] }
  approverGroups: [charge-nurses]
`;

function compile(changes: Record<string, string>): CompileResult {
  return compileBundle(loadConfigFiles({ ...HOSPITAL_REPO, 'extra/targets.yaml': TARGETS, 'extra/listeners.yaml': LISTENERS, 'extra/role.yaml': ROLE, 'extra/approval.yaml': APPROVAL, ...changes }), COMMIT);
}

function errors(r: CompileResult): Array<{ code: string; path: string; message: string; file: string }> {
  return r.diagnostics.filter((d) => d.severity === 'error').map(({ code, path, message, file }) => ({ code, path, message, file }));
}

describe('HTTP and SSH in the config repository', () => {
  it('compiles targets, listeners, route rules, SSH permissions and approval matches with every default filled', () => {
    const { bundle, diagnostics } = compile({});
    expect(diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    const records = bundle!.targets.find((t) => t.name === 'records')!;
    expect(records.kind).toMatchObject({ case: 'http', value: { baseUrl: 'https://records.internal:8443/v2', authorizationRef: 'env:RECORDS_TOKEN', maxMaskBodyBytes: 10485760, timeoutMs: 30000 } });
    expect(bundle!.targets.find((t) => t.name === 'lab')!.kind).toMatchObject({ case: 'ssh', value: { port: 22, hostKeys: [HOST_KEY], connectTimeoutMs: 10000 } });
    expect(bundle!.listeners.find((l) => l.name === 'records-https')!.protocol).toMatchObject({ case: 'http', value: { allowPlaintext: false, maxRequestBytes: 10485760 } });
    const role = bundle!.roles.find((r) => r.name === 'lab-tech')!;
    expect(role.tables).toEqual([]);
    expect(role.httpDefaultAction).toBe(PolicyAction.DENY);
    expect(role.httpRoutes.map((r) => [r.id, r.methods, r.path, r.action])).toEqual([
      ['read-patients', ['GET'], '/api/patients/*', PolicyAction.ALLOW],
      ['role/lab-tech/http/1', [], '/api/admin/**', PolicyAction.DENY],
    ]);
    expect(role.httpRoutes[0]!.masks[0]).toMatchObject({ path: '$.patients[*].ssn', mask: { strategy: 'redact' } });
    expect(bundle!.maskingStrategies.some((s) => s.name === 'redact')).toBe(true);
    expect(role.ssh).toMatchObject({ shell: true, exec: true, sftp: false, execCommands: ['^ls( |$)'], portForwards: ['db.internal:5432'] });
    expect(bundle!.approvalRules.find((a) => a.id === 'lab-risky')!.match).toMatchObject({ sshCommands: ['^rm '], sshShell: true, httpRoutes: ['^DELETE '] });
  });

  it('reports each mistake where it is', () => {
    const r = compile({
      'extra/listeners.yaml': LISTENERS.replace('target: lab,', 'target: records,').replace('http: { tls: { certFile: /etc/w/api.crt, keyFile: /etc/w/api.key } }', 'http: {}'),
      'extra/role.yaml': ROLE.replace('/api/admin/**', '/api/**/admin').replace('$.patients[*].ssn', '$.patients[?(@.x)]').replace('^ls( |$)', '^ls(').replace('strategy: redact', 'strategy: no-such-mask'),
      'extra/targets.yaml': TARGETS.replace(HOST_KEY, 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'),
      'extra/approval.yaml': APPROVAL.replace('^rm ', '(?=rm)'),
    });
    expect(r.bundle).toBeUndefined();
    const found = errors(r).map((e) => `${e.file} ${e.path} ${e.code}`);
    expect(found).toEqual(
      expect.arrayContaining([
        'extra/listeners.yaml spec.http listener-tls-required',
        'extra/listeners.yaml spec.ssh listener-protocol-mismatch',
        'extra/role.yaml spec.http.routes[0].masks[0].path invalid-value',
        'extra/role.yaml spec.http.routes[1].path invalid-value',
        'extra/role.yaml spec.ssh.execCommands[0] invalid-value',
        'extra/targets.yaml spec.ssh.hostKeys[0] invalid-value',
        'extra/approval.yaml spec.match.sshCommands[0] invalid-value',
      ]),
    );
    expect(errors(r).find((e) => e.code === 'listener-protocol-mismatch')!.message).toBe('listener "lab-ssh" speaks ssh, but target "records" is an HTTP target');
    expect(errors(r).some((e) => /no-such-mask/.test(e.message))).toBe(true);
  });

  it('refuses a literal secret and a target that is neither postgres, http nor ssh', () => {
    const r = compile({ 'extra/targets.yaml': TARGETS.replace('authorizationRef: env:RECORDS_TOKEN', 'authorizationRef: Bearer hunter2') });
    expect(errors(r).some((e) => e.path.includes('authorizationRef'))).toBe(true);
    const both = compile({ 'extra/targets.yaml': TARGETS.replace('http: { baseUrl', 'ssh: { host: x, user: y, privateKeyRef: env:K, hostKeys: ["k"] }\n  http: { baseUrl') });
    expect(both.bundle).toBeUndefined();
  });
});
