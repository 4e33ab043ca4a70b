/**
 * HTTP targets over TLS on both sides: the agent's listener serves HTTPS
 * with its certificate, and reaches an HTTPS upstream it verifies against
 * the target's CA file — an upstream with a certificate from another CA is
 * refused (502), never used unverified.
 */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type net from 'node:net';
import { Agent, fetch as undiciFetch } from 'undici';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/src/agent.js';
import { parseAgentConfig } from '../../agent/src/config/load.js';
import { makeTestPki, type TestPki } from '../support/certs.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';

let pki: TestPki;
let issuer: TestIssuer;
let upstream: https.Server;
let agent: RunningAgent;
let client: Agent;

beforeAll(async () => {
  pki = await makeTestPki();
  issuer = await startOidcIssuer();
  upstream = https.createServer({ cert: pki.serverCert, key: pki.serverKey }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tls: true, ssn: '123-45-6789', auth: req.headers.authorization ?? null }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as net.AddressInfo).port;
  const target = (name: string, ca: string) => ({ name, kind: 'http', baseUrl: `https://localhost:${port}`, caFile: ca });
  fs.writeFileSync(path.join(pki.dir, 'recording.jsonl'), '');
  agent = await startAgent(
    parseAgentConfig(
      JSON.stringify({
        agent: { id: 'agent-https' },
        listeners: [
          { name: 'good', protocol: 'http', address: '127.0.0.1', port: 0, target: 'records', tls: { certFile: pki.paths.serverCert, keyFile: pki.paths.serverKey } },
          { name: 'wrong-ca', protocol: 'http', address: '127.0.0.1', port: 0, target: 'records-other-ca', tls: { certFile: pki.paths.serverCert, keyFile: pki.paths.serverKey } },
        ],
        targets: [target('records', pki.paths.caCert), target('records-other-ca', pki.paths.otherCaCert)],
        identity: { issuers: [{ issuer: issuer.issuer, audience: 'warden' }], groupMappings: [{ group: 'care', role: 'care' }] },
        roles: [{ name: 'care', targets: ['records', 'records-other-ca'], http: { routes: [{ path: '/**', action: 'allow', masks: [{ path: '$.ssn', mask: { strategy: 'redact' } }] }] } }],
        recording: { kind: 'jsonl', path: path.join(pki.dir, 'recording.jsonl') },
      }),
      'https-test',
    ),
    { baseDir: pki.dir, logger: pino({ level: 'silent' }) },
  );
  client = new Agent({ connect: { ca: pki.caCert } });
}, 30_000);

afterAll(async () => {
  await agent?.stop();
  await new Promise((r) => upstream?.close(r));
  await issuer?.close();
  await client?.close();
  await pki?.remove();
});

describe('HTTP targets over TLS', () => {
  it('serves HTTPS and verifies the upstream against the target CA', async () => {
    const headers = { authorization: `Bearer ${await issuer.sign({ sub: 'n-1', groups: ['care'] })}` };
    const good = await undiciFetch(`https://localhost:${agent.addresses.get('good')!.port}/x`, { headers, dispatcher: client });
    expect(good.status).toBe(200);
    expect(await good.json()).toEqual({ tls: true, ssn: '[REDACTED]', auth: null });
    const bad = await undiciFetch(`https://localhost:${agent.addresses.get('wrong-ca')!.port}/x`, { headers, dispatcher: client });
    expect(bad.status).toBe(502);
    expect(await bad.json()).toMatchObject({ error: 'upstream_error', message: expect.stringMatching(/could not be reached/) });
  });
});
