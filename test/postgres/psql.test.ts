/**
 * The stock `psql` client, unchanged but for the endpoint and the token as
 * its password, works through the agent (when psql is installed; CI
 * installs it). Also checks the startup-phase negotiation psql relies on.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';
import { RawPg } from '../support/raw-pg.js';

const run = promisify(execFile);
let issuer: TestIssuer;
let agent: TestAgent;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  agent = await startTestAgent({ issuer: issuer.issuer });
});

afterAll(async () => {
  await agent?.stop();
  await issuer?.close();
});

function psql(args: string[], password: string, input?: string): Promise<{ stdout: string; stderr: string }> {
  const p = run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(agent.port), '-U', 'ai-agent', '-d', 'clinical', ...args], {
    env: { ...process.env, PGPASSWORD: password, PGSSLMODE: 'prefer', PGGSSENCMODE: 'prefer' },
  });
  if (input !== undefined) p.child.stdin!.end(input);
  return p;
}

describe('psql through the agent', () => {
  it('runs queries, \\copy both ways and reports errors', async () => {
    const token = await issuer.sign({ groups: [TEST_GROUP] });
    const { stdout } = await psql(['-At', '-c', "SELECT 'hello ' || 'psql'"], token);
    expect(stdout.trim()).toBe('hello psql');
    const copied = await psql(['-At', '-c', '\\copy (SELECT g, g * 2 FROM generate_series(1, 3) g) TO STDOUT'], token);
    expect(copied.stdout).toBe('1\t2\n2\t4\n3\t6\n');
    const script = 'CREATE TEMP TABLE t (a int, b text);\n\\copy t FROM STDIN\n1\tone\n2\ttwo\n\\.\nSELECT count(*) || \':\' || string_agg(b, \',\' ORDER BY a) FROM t;\n';
    const loaded = await psql(['-At', '-f', '-'], token, script);
    expect(loaded.stdout.trim().split('\n').at(-1)).toBe('2:one,two');
    await expect(psql(['-c', 'SELECT 1/0'], token)).rejects.toMatchObject({ stderr: expect.stringMatching(/division by zero/) });
  });

  it('shows a refused token as a clear error', async () => {
    const expired = await issuer.sign({ groups: [TEST_GROUP], exp: Math.floor(Date.now() / 1000) - 3600 });
    await expect(psql(['-c', 'SELECT 1'], expired)).rejects.toMatchObject({ stderr: expect.stringMatching(/expired/) });
  });

  it('answers GSSENCRequest and SSLRequest with N when no certificate is configured', async () => {
    const raw = await RawPg.connect(agent.port);
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    const got: Buffer[] = [];
    raw.socket.removeAllListeners('data');
    raw.socket.on('data', (d: Buffer) => got.push(d));
    raw.send(gss);
    const ssl = Buffer.from(gss);
    ssl.writeInt32BE(80877103, 4);
    raw.send(ssl);
    await new Promise((r) => setTimeout(r, 200));
    expect(Buffer.concat(got).toString()).toBe('NN');
    raw.end();
  });
});
