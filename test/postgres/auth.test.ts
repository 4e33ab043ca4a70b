/**
 * Only a valid token from a configured issuer, whose groups map to exactly
 * one role allowed on the target, opens a session. Every refusal is a
 * PostgreSQL error with 28P01/28000 and the upstream never sees a
 * connection: the target here is a tripwire that counts connections.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';
import { services } from '../support/services.js';

let issuer: TestIssuer;
let guarded: TestAgent;
let live: TestAgent;
let tripwire: net.Server;
let upstreamConnections = 0;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  tripwire = net.createServer((s) => {
    upstreamConnections++;
    s.destroy();
  });
  await new Promise<void>((r) => tripwire.listen(0, '127.0.0.1', () => r()));
  const tripPort = (tripwire.address() as net.AddressInfo).port;
  const roles = [
    { name: 'tester', targets: ['clinical'] },
    { name: 'other', targets: ['clinical'] },
    { name: 'elsewhere', targets: ['elsewhere-db'] },
  ];
  const groupMappings = [
    { group: TEST_GROUP, role: 'tester' },
    { group: 'other-group', role: 'other' },
    { group: 'elsewhere-group', role: 'elsewhere' },
  ];
  const extraTargets = [{ name: 'elsewhere-db', kind: 'postgres' as const, host: '127.0.0.1', port: tripPort, database: 'x', user: 'x' }];
  guarded = await startTestAgent({ issuer: issuer.issuer, target: { host: '127.0.0.1', port: tripPort, connectTimeoutMs: 1000 }, roles, groupMappings, extraTargets });
  live = await startTestAgent({ issuer: issuer.issuer, roles, groupMappings, extraTargets });
});

afterAll(async () => {
  await guarded?.stop();
  await live?.stop();
  await issuer?.close();
  tripwire?.close();
});

async function refusal(token: string): Promise<{ code: string; message: string }> {
  try {
    const c = await connectThroughAgent(guarded.port, token);
    await c.end();
  } catch (err) {
    const e = err as { code: string; message: string };
    return { code: e.code, message: e.message };
  }
  throw new Error('login was accepted');
}

describe('token authentication', () => {
  it('accepts a valid token and maps its group to the role', async () => {
    const c = await connectThroughAgent(live.port, await issuer.sign({ sub: 'bot-1', groups: [TEST_GROUP] }));
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await c.end();
  });

  const now = () => Math.floor(Date.now() / 1000);
  const cases: Array<[string, () => Promise<string> | string, string, RegExp]> = [
    ['expired', () => issuer.sign({ groups: [TEST_GROUP], exp: now() - 600, iat: now() - 900 }), '28P01', /expired/i],
    ['not yet valid', () => issuer.sign({ groups: [TEST_GROUP], nbf: now() + 600 }), '28P01', /not (yet )?valid|nbf/i],
    ['wrong issuer', () => issuer.sign({ groups: [TEST_GROUP] }, { issuer: 'https://evil.example.com' }), '28P01', /issuer/i],
    ['wrong audience', () => issuer.sign({ groups: [TEST_GROUP] }, { audience: 'someone-else' }), '28P01', /audience/i],
    ['alg none', () => issuer.unsignedToken({ groups: [TEST_GROUP] }), '28P01', /alg|algorithm/i],
    ['HS256 with the public key', () => issuer.hs256WithPublicKey({ groups: [TEST_GROUP] }), '28P01', /alg|algorithm/i],
    ['unknown kid', () => issuer.sign({ groups: [TEST_GROUP] }, { kid: 'no-such-key' }), '28P01', /key/i],
    ['tampered payload', async () => issuer.tamper(await issuer.sign({ groups: ['nobody'] })), '28P01', /signature/i],
    ['garbage', () => 'not-a-jwt', '28P01', /token/i],
    ['empty', () => '', '28P01', /token/i],
    ['group with no role', () => issuer.sign({ groups: ['interns'] }), '28000', /no .*role|mapping/i],
    ['groups mapping to two roles', () => issuer.sign({ groups: [TEST_GROUP, 'other-group'] }), '28000', /ambiguous|more than one|roles/i],
    ['role not allowed on this target', () => issuer.sign({ groups: ['elsewhere-group'] }), '28000', /may not connect/i],
  ];

  for (const [name, make, code, message] of cases) {
    it(`refuses ${name} with ${code} before touching the upstream`, async () => {
      const before = upstreamConnections;
      const err = await refusal(await make());
      expect(err.code).toBe(code);
      expect(err.message).toMatch(message);
      expect(err.message).not.toMatch(/BEGIN (PUBLIC|PRIVATE) KEY|eyJ/);
      expect(upstreamConnections).toBe(before);
    });
  }

  it('the tripwire does count a connection once a token is valid', async () => {
    const before = upstreamConnections;
    await refusal(await issuer.sign({ groups: [TEST_GROUP] }));
    expect(upstreamConnections).toBe(before + 1);
  });

  it('refuses a token over plaintext when the listener requires TLS, without asking for it', async () => {
    const strict = await startTestAgent({ issuer: issuer.issuer, listener: { allowPlaintext: false, tls: undefined } }).catch((e: Error) => e);
    // A listener with neither TLS nor allowPlaintext is a configuration error, named as such.
    expect(strict).toBeInstanceOf(Error);
    expect((strict as Error).message).toMatch(/needs tls .* or allowPlaintext/);
  });

  it('records refused logins', async () => {
    await refusal(await issuer.sign({ sub: 'intruder', groups: ['interns'] }));
    const events = await guarded.events();
    expect(events.some((e) => e.type === 'auth.refused' && e.sqlState === '28000')).toBe(true);
    expect(JSON.stringify(events)).not.toMatch(/eyJ/); // no token ever lands in the log
  });

  it('refuses a database the listener does not serve', async () => {
    const t = await issuer.sign({ groups: [TEST_GROUP] });
    await expect(connectThroughAgent(live.port, t, { database: 'postgres_other' })).rejects.toMatchObject({ code: '3D000' });
    void services;
  });
});
