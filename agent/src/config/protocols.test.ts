/** The single-file config's HTTP and SSH listeners and targets: accepted shapes and clear errors. */
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from './load.js';
import { bundleFromConfig } from './to-bundle.js';

const base = {
  agent: { id: 'a' },
  identity: { issuers: [{ issuer: 'https://idp.example.org', audience: 'warden' }], groupMappings: [{ group: 'g', role: 'r' }] },
  recording: { kind: 'jsonl', path: 'sessions.jsonl' },
};
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

function problems(cfg: unknown): string[] {
  try {
    parseAgentConfig(JSON.stringify(cfg), 'agent.yaml');
    return [];
  } catch (err) {
    return (err as Error).message.split('\n').slice(1).map((l) => l.trim().replace(/^- /, ''));
  }
}

describe('HTTP and SSH in the single-file config', () => {
  it('compiles with the control plane compiler', () => {
    const cfg = parseAgentConfig(
      JSON.stringify({
        ...base,
        listeners: [
          { name: 'api', protocol: 'http', address: '127.0.0.1', port: 8080, target: 'api', allowPlaintext: true },
          { name: 'lab', protocol: 'ssh', address: '127.0.0.1', port: 2222, target: 'lab', hostKeyFile: 'host_key' },
        ],
        targets: [
          { name: 'api', kind: 'http', baseUrl: 'http://127.0.0.1:9000', authorization: 'env:API_AUTH' },
          { name: 'lab', kind: 'ssh', host: '127.0.0.1', user: 'u', privateKey: 'file:key', hostKeys: [KEY] },
        ],
        roles: [{ name: 'r', targets: ['api', 'lab'], http: { routes: [{ path: '/**', action: 'allow' }] }, ssh: { exec: true } }],
      }),
      'agent.yaml',
    );
    const bundle = bundleFromConfig(cfg, 'agent.yaml');
    expect(bundle.listeners.map((l) => l.protocol.case)).toEqual(['http', 'ssh']);
    expect(bundle.targets.map((t) => t.kind.case)).toEqual(['http', 'ssh']);
    expect(bundle.roles[0]!.ssh?.exec).toBe(true);
  });

  it('names each problem', () => {
    expect(
      problems({
        ...base,
        listeners: [{ name: 's', protocol: 'ssh', address: '127.0.0.1', port: 1, target: 'lab' }],
        targets: [{ name: 'lab', kind: 'ssh', host: 'h', user: 'u', privateKey: 'hunter2', hostKeys: [KEY] }],
        roles: [{ name: 'r', targets: ['lab'] }],
      }),
    ).toEqual(["listeners.0: must have required property 'hostKeyFile'", 'targets.0.privateKey: secrets must be references (env:NAME or file:PATH), never literal values']);
    expect(
      problems({ ...base, listeners: [{ name: 'h', protocol: 'http', address: '0.0.0.0', port: 1, target: 'api' }], targets: [{ name: 'api', kind: 'http', baseUrl: 'http://x' }], roles: [{ name: 'r', targets: ['api'] }] }),
    ).toEqual(['listeners.0: needs tls (certFile/keyFile) or allowPlaintext: true; tokens are never taken in cleartext otherwise']);
    expect(() =>
      bundleFromConfig(
        parseAgentConfig(JSON.stringify({ ...base, listeners: [{ name: 'h', protocol: 'http', address: '127.0.0.1', port: 1, target: 'lab', allowPlaintext: true }], targets: [{ name: 'lab', kind: 'ssh', host: 'h', user: 'u', privateKey: 'env:K', hostKeys: [KEY] }], roles: [{ name: 'r', targets: ['lab'] }] }), 'agent.yaml'),
        'agent.yaml',
      ),
    ).toThrow(/listener "h" speaks http, but target "lab" is an SSH target/);
  });
});
