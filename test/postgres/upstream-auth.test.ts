/**
 * The agent logs in upstream with its own credentials: SCRAM-SHA-256, md5
 * and trust, and TLS with CA verification, against a real PostgreSQL
 * cluster started for this file. Credentials come from env:/file:
 * references; failures are clear errors that never name the agent's
 * database user to the client.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';
import { startScratchPostgres, type ScratchPostgres } from '../support/scratch-postgres.js';
import type { PostgresTargetConfig } from '../../agent/src/config/types.js';

let issuer: TestIssuer;
let pg: ScratchPostgres;
let token: string;
let secretDir: string;
const agents: TestAgent[] = [];

beforeAll(async () => {
  issuer = await startOidcIssuer();
  pg = await startScratchPostgres({ ssl: true });
  token = await issuer.sign({ groups: [TEST_GROUP] });
  secretDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-secret-'));
  process.env.WARDEN_TEST_SCRAM_PASSWORD = pg.users.scram.password;
  process.env.WARDEN_TEST_WRONG_PASSWORD = 'not-the-password';
}, 60_000);

afterAll(async () => {
  for (const a of agents) await a.stop();
  await pg?.stop();
  await issuer?.close();
  if (secretDir) fs.rmSync(secretDir, { recursive: true, force: true });
});

async function agentFor(target: Partial<PostgresTargetConfig>): Promise<TestAgent> {
  const a = await startTestAgent({
    issuer: issuer.issuer,
    target: { host: pg.host, port: pg.port, database: pg.database, connectTimeoutMs: 3000, ...target },
  });
  agents.push(a);
  return a;
}

async function whoAmI(a: TestAgent): Promise<{ user: string; ssl: boolean }> {
  const c = await connectThroughAgent(a.port, token, { database: 'clinical' });
  const r = await c.query('SELECT current_user AS user, coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS ssl');
  await c.end();
  return r.rows[0];
}

describe('upstream login methods', () => {
  it('SCRAM-SHA-256 with the password from env:', async () => {
    const a = await agentFor({ user: pg.users.scram.name, password: 'env:WARDEN_TEST_SCRAM_PASSWORD' });
    expect(await whoAmI(a)).toEqual({ user: pg.users.scram.name, ssl: false });
  });

  it('md5 with the password from file:', async () => {
    const file = path.join(secretDir, 'md5-password');
    fs.writeFileSync(file, pg.users.md5.password + '\n');
    const a = await agentFor({ user: pg.users.md5.name, password: `file:${file}` });
    expect(await whoAmI(a)).toEqual({ user: pg.users.md5.name, ssl: false });
  });

  it('trust without a password', async () => {
    const a = await agentFor({ user: pg.users.trust.name });
    expect((await whoAmI(a)).user).toBe(pg.users.trust.name);
  });

  it('TLS verify-full against the cluster CA', async () => {
    const caFile = path.join(secretDir, 'ca.pem');
    fs.writeFileSync(caFile, pg.pki!.caCert);
    process.env.WARDEN_TEST_TLS_PASSWORD = pg.users.tls.password;
    const a = await agentFor({ user: pg.users.tls.name, password: 'env:WARDEN_TEST_TLS_PASSWORD', tls: { mode: 'verify-full', caFile, serverName: 'localhost' } });
    expect(await whoAmI(a)).toEqual({ user: pg.users.tls.name, ssl: true });
  });

  it('TLS verify-full refuses a server signed by another CA', async () => {
    const caFile = path.join(secretDir, 'other-ca.pem');
    fs.writeFileSync(caFile, pg.pki!.otherCaCert);
    const a = await agentFor({ user: pg.users.tls.name, password: 'env:WARDEN_TEST_TLS_PASSWORD', tls: { mode: 'verify-full', caFile, serverName: 'localhost' } });
    await expect(connectThroughAgent(a.port, token)).rejects.toMatchObject({ code: '08001', message: expect.stringMatching(/TLS .*failed/) });
  });

  it('a wrong upstream password fails with 08004 and does not reveal the agent user', async () => {
    const a = await agentFor({ user: pg.users.scram.name, password: 'env:WARDEN_TEST_WRONG_PASSWORD' });
    const err = (await connectThroughAgent(a.port, token).catch((e: unknown) => e)) as { code: string; message: string };
    expect(err.code).toBe('08004');
    expect(err.message).toMatch(/could not log in to upstream/);
    expect(err.message).not.toContain(pg.users.scram.name);
  });

  it('a missing env: secret is a start-up error that names the variable', async () => {
    await expect(agentFor({ user: pg.users.scram.name, password: 'env:WARDEN_TEST_NOT_SET' })).rejects.toThrow(/WARDEN_TEST_NOT_SET is not set/);
  });
});
