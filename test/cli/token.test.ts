/**
 * `warden token` as a person or an AI agent's launcher runs it: the real CLI
 * process fetches a client-credentials token from a real (in-process) OIDC
 * issuer through discovery, and the token it prints logs in through a real
 * agent. Refusals and usage errors come with exit codes 1 and 2, and the
 * client secret never appears in any output.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';

const run = promisify(execFile);
const SECRET = `s3cret-${process.pid}-${Date.now()}`;
let issuer: TestIssuer;
let agent: TestAgent;
let dir: string;

async function warden(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args], {
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  issuer = await startOidcIssuer({ clients: [{ clientId: 'analytics-bot', clientSecret: SECRET, groups: [TEST_GROUP], audience: 'warden' }], tokenLifetimeSeconds: 600 });
  agent = await startTestAgent({ issuer: issuer.issuer });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-token-cli-'));
});

afterAll(async () => {
  await agent?.stop();
  await issuer?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('warden token', () => {
  it('prints a client-credentials token the agent accepts as the PostgreSQL password', async () => {
    const r = await warden(['token', '--issuer', issuer.issuer, '--client-id', 'analytics-bot', '--client-secret', 'env:BOT_SECRET', '--audience', 'warden'], { BOT_SECRET: SECRET });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const token = r.stdout.trim();
    expect(r.stdout).toBe(`${token}\n`);
    expect(decodeJwt(token)).toMatchObject({ iss: issuer.issuer, sub: 'analytics-bot', aud: 'warden', groups: [TEST_GROUP] });
    expect(issuer.discoveryRequests).toBeGreaterThanOrEqual(1);

    const c = await connectThroughAgent(agent.port, token, { user: 'analytics-bot' });
    expect((await c.query('SELECT 40 + 2 AS answer')).rows).toEqual([{ answer: 42 }]);
    await c.end();
    const start = (await agent.events()).find((e) => e.type === 'session.start');
    expect(start).toMatchObject({ identity: { subject: 'analytics-bot', issuer: issuer.issuer }, role: 'tester' });
  }, 60_000);

  it('with --json prints the token and its expiry only; the secret can come from a file', async () => {
    const file = path.join(dir, 'secret');
    fs.writeFileSync(file, SECRET + '\n', { mode: 0o600 });
    const before = Date.now();
    const r = await warden(['token', '--json', '--issuer', issuer.issuer, '--client-id', 'analytics-bot', '--client-secret', `file:${file}`, '--scope', 'db:read audit']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(Object.keys(out).sort()).toEqual(['access_token', 'expires_at', 'expires_in', 'scope', 'token_type']);
    expect(out.scope).toBe('db:read audit');
    expect(decodeJwt(out.access_token as string).scope).toBe('db:read audit');
    expect(out).toMatchObject({ token_type: 'bearer', expires_in: 600 });
    const expiresAt = Date.parse(out.expires_at as string);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 590_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(decodeJwt(out.access_token as string).exp! * 1000).toBeGreaterThanOrEqual(expiresAt - 5_000);
  }, 60_000);

  it('exits 1 with the IdP error when the client is refused, never echoing the secret', async () => {
    const r = await warden(['token', '--issuer', issuer.issuer, '--client-id', 'analytics-bot', '--client-secret', 'env:BOT_SECRET'], { BOT_SECRET: 'wrong-' + SECRET });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/invalid_client: client authentication failed/);
    expect(r.stderr).not.toContain(SECRET);
  }, 60_000);

  it('exits 2 on usage errors: missing flags, a literal secret, plain http to a remote issuer', async () => {
    const missing = await warden(['token', '--client-id', 'x', '--client-secret', 'env:X']);
    expect(missing).toMatchObject({ code: 2, stdout: '' });
    expect(missing.stderr).toMatch(/--issuer is required/);

    const literal = await warden(['token', '--issuer', issuer.issuer, '--client-id', 'analytics-bot', '--client-secret', SECRET]);
    expect(literal.code).toBe(2);
    expect(literal.stderr).toMatch(/use env:NAME or file:PATH/);
    expect(literal.stderr).not.toContain(SECRET);

    const unset = await warden(['token', '--issuer', issuer.issuer, '--client-id', 'analytics-bot', '--client-secret', 'env:WARDEN_TEST_UNSET_SECRET']);
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/WARDEN_TEST_UNSET_SECRET is not set/);

    const http = await warden(['token', '--issuer', 'http://idp.example.org/realms/h', '--client-id', 'a', '--client-secret', 'env:X'], { X: 'y' });
    expect(http.code).toBe(2);
    expect(http.stderr).toMatch(/must be https:\/\//);

    const help = await warden(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/token +fetch an access token/);
    expect(help.stdout).toMatch(/warden token --issuer https:\/\/idp\.example\.org/);
  }, 60_000);

  it('exits 1 when the issuer cannot be reached', async () => {
    const r = await warden(['token', '--issuer', 'http://127.0.0.1:1/realms/none', '--client-id', 'a', '--client-secret', 'env:X'], { X: 'y' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/could not be reached/);
  }, 60_000);
});
