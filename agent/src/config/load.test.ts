import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadAgentConfig, parseAgentConfig } from './load.js';
import { resolveSecret } from './secrets.js';

const valid = `
agent: { id: agent-1 }
listeners:
  - { name: pg, protocol: postgres, address: 127.0.0.1, port: 6432, target: clinical, allowPlaintext: true }
targets:
  - { name: clinical, kind: postgres, host: db, port: 5432, database: clinical, user: warden, password: env:PGPASS }
identity:
  issuers: [{ issuer: "https://idp.example.org", audience: warden }]
  groupMappings: [{ group: analysts, role: analytics }]
roles:
  - { name: analytics, targets: [clinical] }
recording: { kind: jsonl, path: sessions.jsonl }
`;

function problems(text: string): string[] {
  try {
    parseAgentConfig(text, '/etc/warden/agent.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('/etc/warden/agent.yaml');
    return (err as ConfigError).problems;
  }
  throw new Error('config was accepted');
}

describe('agent configuration', () => {
  it('accepts a valid file', () => {
    expect(parseAgentConfig(valid).targets[0]).toMatchObject({ password: 'env:PGPASS' });
  });

  it('takes a per-statement sample size for session records, from 0 (none) up', () => {
    expect(parseAgentConfig(valid.replace('path: sessions.jsonl', 'path: sessions.jsonl, sampleRows: 0')).recording.sampleRows).toBe(0);
    expect(problems(valid.replace('path: sessions.jsonl', 'path: sessions.jsonl, sampleRows: -1')).join('\n')).toMatch(/recording\.sampleRows/);
  });

  it('names the path of each problem, all at once', () => {
    const bad = valid
      .replace('password: env:PGPASS', 'password: hunter2')
      .replace('port: 6432', 'port: 99999')
      .replace('audience: warden', 'audience: warden, algorithms: [HS256]');
    const p = problems(bad);
    expect(p).toEqual(
      expect.arrayContaining([
        'targets.0.password: secrets must be references (env:NAME or file:PATH), never literal values',
        expect.stringMatching(/^listeners\.0\.port: must be <= 65535/),
        expect.stringMatching(/^identity\.issuers\.0\.algorithms\.0: must be one of RS256, ES256, EdDSA/),
      ]),
    );
  });

  it('reports unknown keys, dangling references and unsafe listeners', () => {
    expect(problems(valid.replace('recording:', 'recordng: { kind: jsonl, path: x }\nrecording:'))).toContain('(top level): unknown key "recordng"');
    expect(problems(valid.replace('role: analytics', 'role: nobody'))).toContain('identity.groupMappings.0.role: no role named "nobody"');
    expect(problems(valid.replace('target: clinical, allowPlaintext: true', 'target: elsewhere'))).toEqual(
      expect.arrayContaining(['listeners.0.target: no target named "elsewhere"', expect.stringMatching(/^listeners\.0: needs tls/)]),
    );
  });

  it('reports YAML syntax errors and unreadable files', () => {
    expect(problems('agent: [unclosed')[0]).toMatch(/^YAML: /);
    expect(() => loadAgentConfig('/nonexistent/agent.yaml')).toThrow(/cannot read file: ENOENT/);
  });

  it('resolves env: and file: secrets, and names what is missing', () => {
    process.env.WARDEN_TEST_SECRET = 's3cret';
    expect(resolveSecret('env:WARDEN_TEST_SECRET')).toBe('s3cret');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-cfg-'));
    fs.writeFileSync(path.join(dir, 'pw'), 'from-file\n');
    expect(resolveSecret('file:pw', dir)).toBe('from-file');
    expect(() => resolveSecret('env:WARDEN_TEST_ABSENT')).toThrow(/WARDEN_TEST_ABSENT is not set/);
    expect(() => resolveSecret('file:missing', dir)).toThrow(/ENOENT/);
    expect(() => resolveSecret('hunter2')).toThrow(/not a secret reference/);
    expect(() => resolveSecret('hunter2')).not.toThrow(/hunter2/);
    fs.rmSync(dir, { recursive: true });
  });
});
