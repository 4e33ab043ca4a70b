/**
 * The agent's `ops` and `shutdown` settings go through the same config
 * checks as the rest of the file: accepted when right, each problem named
 * with its path when wrong; the command-line flags refuse bad values with
 * exit code 2 before anything starts.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseAgentConfig } from '../../agent/src/config/load.js';

const run = promisify(execFile);
const base = `
agent: { id: agent-1 }
listeners: [{ name: pg, protocol: postgres, address: 127.0.0.1, port: 6432, target: clinical, allowPlaintext: true }]
targets: [{ name: clinical, kind: postgres, host: db, port: 5432, database: clinical, user: warden }]
identity: { issuers: [{ issuer: "https://idp.example.org", audience: warden }], groupMappings: [] }
roles: []
recording: { kind: jsonl, path: sessions.jsonl }
`;

function problems(text: string): string[] {
  try {
    parseAgentConfig(text, 'agent.yaml');
  } catch (err) {
    return (err as ConfigError).problems;
  }
  return [];
}

describe('ops and shutdown settings', () => {
  it('are accepted when well-formed', () => {
    const c = parseAgentConfig(base + 'ops: { address: 0.0.0.0, port: 9090 }\nshutdown: { graceSeconds: 30 }\n', 'agent.yaml');
    expect(c.ops).toEqual({ address: '0.0.0.0', port: 9090 });
    expect(c.shutdown).toEqual({ graceSeconds: 30 });
  });

  it('are refused with the path of each problem', () => {
    const p = problems(base + 'ops: { address: 0.0.0.0, port: 99999, path: /x }\nshutdown: { graceSeconds: -1 }\n');
    expect(p.join('\n')).toMatch(/ops/);
    expect(p.join('\n')).toMatch(/shutdown/);
    expect(p.length).toBeGreaterThanOrEqual(3);
  });

  it('bad --ops or --shutdown-grace flags exit 2 with a clear message', async () => {
    for (const [flag, value, message] of [['--ops', '9090', /--ops: expected address:port/], ['--shutdown-grace', 'soon', /--shutdown-grace: expected seconds/]] as const) {
      const err = await run(process.execPath, ['--import', 'tsx', 'agent/src/main.ts', '--config', 'deploy/examples/agent.yaml', flag, value], { timeout: 30_000 }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(err).toMatchObject({ code: 2 });
      expect(err!.stderr).toMatch(message);
    }
  }, 60_000);
});
