/**
 * TLS on the client side of the agent: SSLRequest is answered 'S' when a
 * certificate is configured, tokens then travel encrypted; a listener that
 * requires TLS refuses plaintext logins before asking for a token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, startTestAgent, TEST_GROUP, type TestAgent } from '../support/agent-harness.js';
import { makeTestPki, type TestPki } from '../support/certs.js';
import { RawPg, serialize } from '../support/raw-pg.js';

let issuer: TestIssuer;
let pki: TestPki;
let strict: TestAgent;
let lenient: TestAgent;
let token: string;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  pki = await makeTestPki();
  const tls = { certFile: pki.paths.serverCert, keyFile: pki.paths.serverKey };
  strict = await startTestAgent({ issuer: issuer.issuer, listener: { allowPlaintext: false, tls } });
  lenient = await startTestAgent({ issuer: issuer.issuer, listener: { allowPlaintext: true, tls } });
  token = await issuer.sign({ sub: 'tls-bot', groups: [TEST_GROUP] });
});

afterAll(async () => {
  await strict?.stop();
  await lenient?.stop();
  await issuer?.close();
  await pki?.remove();
});

describe('listener TLS', () => {
  it('accepts a verified TLS connection and records it as encrypted', async () => {
    const c = await connectThroughAgent(strict.port, token, { ssl: { ca: pki.caCert, servername: 'localhost' } });
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await c.end();
    const events = await strict.events();
    expect(events.find((e) => e.type === 'session.start')).toMatchObject({ tls: true, identity: { subject: 'tls-bot' } });
  });

  it('a client that trusts another CA refuses the agent', async () => {
    await expect(connectThroughAgent(strict.port, token, { ssl: { ca: pki.otherCaCert, servername: 'localhost' } })).rejects.toThrow(/certificate/i);
  });

  it('refuses a plaintext login with 28000 without asking for the token', async () => {
    const raw = await RawPg.connect(strict.port);
    raw.send(serialize.startup({ user: 'x', database: 'clinical' }));
    const first = await raw.waitFor(() => true);
    expect(first.name).toBe('error');
    expect(first.code).toBe('28000');
    expect(String(first.message)).toMatch(/requires TLS/);
  });

  it('with allowPlaintext, serves both plaintext and TLS clients', async () => {
    const plain = await connectThroughAgent(lenient.port, token);
    const secure = await connectThroughAgent(lenient.port, token, { ssl: { ca: pki.caCert, servername: 'localhost' } });
    expect((await plain.query('SELECT 1 AS a')).rows[0].a).toBe(1);
    expect((await secure.query('SELECT 2 AS a')).rows[0].a).toBe(2);
    await plain.end();
    await secure.end();
  });

  it('refuses bytes pipelined after SSLRequest (no plaintext injection into the TLS session)', async () => {
    const raw = await RawPg.connect(strict.port);
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    raw.socket.removeAllListeners('data');
    const got: Buffer[] = [];
    raw.socket.on('data', (d: Buffer) => got.push(d));
    raw.send(Buffer.concat([ssl, serialize.startup({ user: 'x', database: 'clinical' })]));
    expect(await raw.closedWithin(3000)).toBe(true);
    expect(Buffer.concat(got).toString('latin1')).not.toMatch(/^S/);
  });
});
