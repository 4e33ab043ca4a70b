/**
 * The HTTP engine for real: a real upstream service started here, a real
 * OIDC issuer, an agent from a single-file config, and fetch (undici) as
 * the client. What is asserted is what a client and an auditor observe:
 * statuses, bodies, what the upstream received, and the session records.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/src/agent.js';
import { parseAgentConfig } from '../../agent/src/config/load.js';
import { bundleFromConfig } from '../../agent/src/config/to-bundle.js';
import type { AgentConfig, RoleConfig } from '../../agent/src/config/types.js';
import { readJsonl } from '../../agent/src/audit/jsonl-recorder.js';
import type { SessionEvent } from '../../agent/src/audit/events.js';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

const PATIENTS = {
  patients: [
    { id: 1, name: 'Ada Byron', ssn: '123-45-6789', dob: '1961-03-04', mrn: 'MRN-0001', contact: { email: 'ada@example.org', phone: '617-555-0101' } },
    { id: 2, name: 'Alan Turing', ssn: '987-65-4321', dob: '1954-06-23', mrn: 'MRN-0002', contact: { email: 'alan@example.org', phone: '617-555-0102' } },
  ],
  page: { next: null },
};

let issuer: TestIssuer;
let upstream: http.Server;
let upstreamPort: number;
const seen: Seen[] = [];
let agent: RunningAgent;
let base: string;
let dir: string;
let recording: string;
let config: AgentConfig;

function startUpstream(): Promise<number> {
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      const json = (status: number, body: unknown, type = 'application/json'): void => {
        res.writeHead(status, { 'content-type': type, etag: '"upstream-etag"' }).end(typeof body === 'string' ? body : JSON.stringify(body));
      };
      const url = req.url!;
      if (url.startsWith('/api/patients') && req.method === 'GET') return json(200, PATIENTS);
      if (url.startsWith('/api/patients/') && req.method === 'DELETE') return json(200, { deleted: url.split('/').pop() });
      if (url === '/api/notes') return json(200, { notes: [{ body: 'Patient SSN 123-45-6789, call 617-555-0101 on 2024-01-02.' }] });
      if (url === '/api/big') return json(200, { rows: Array.from({ length: 4000 }, (_, i) => ({ i, ssn: '123-45-6789' })) });
      if (url === '/api/html') return json(200, '<html>123-45-6789</html>', 'text/html');
      if (url === '/api/broken') return json(200, '{"patients": [', 'application/json');
      if (url === '/api/admin/users') return json(200, { users: ['root'] });
      if (url === '/api/echo') return json(200, { ok: true });
      if (url.startsWith('/stream')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let n = 0;
        const tick = setInterval(() => {
          res.write(`line ${n}\n`);
          if (++n === 5) {
            clearInterval(tick);
            res.end();
          }
        }, 5);
        return;
      }
      json(404, { error: 'not found' });
    });
  });
  return new Promise((resolve) => upstream.listen(0, '127.0.0.1', () => resolve((upstream.address() as net.AddressInfo).port)));
}

beforeAll(async () => {
  process.env.WARDEN_TEST_HTTP_HASH_KEY = 'http-test-hash-key-0123456789abcdef';
  process.env.WARDEN_TEST_HTTP_UPSTREAM_AUTH = 'Bearer agent-own-credential';
  issuer = await startOidcIssuer();
  upstreamPort = await startUpstream();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-http-'));
  recording = path.join(dir, 'sessions.jsonl');
  config = parseAgentConfig(
    JSON.stringify({
      agent: { id: 'agent-http-test' },
      listeners: [{ name: 'records-http', protocol: 'http', address: '127.0.0.1', port: 0, target: 'records', allowPlaintext: true, maxRequestBytes: 4096 }],
      targets: [{ name: 'records', kind: 'http', baseUrl: `http://127.0.0.1:${upstreamPort}`, authorization: 'env:WARDEN_TEST_HTTP_UPSTREAM_AUTH', maxMaskBodyBytes: 64 * 1024 }],
      identity: {
        issuers: [{ issuer: issuer.issuer, audience: 'warden' }],
        groupMappings: [
          { group: 'care', role: 'care-api' },
          { group: 'outsiders', role: 'elsewhere' },
        ],
      },
      roles: [
        {
          name: 'care-api',
          targets: ['records'],
          http: {
            defaultAction: 'deny',
            routes: [
              { id: 'no-admin', path: '/api/admin/**', action: 'deny' },
              {
                id: 'read-patients',
                methods: ['GET'],
                path: '/api/patients',
                action: 'allow',
                masks: [
                  { path: '$.patients[*].ssn', mask: { strategy: 'partial', params: { keepSuffix: 4 } } },
                  { path: '$.patients[*].mrn', mask: { strategy: 'patient-token' } },
                  { path: '$..email', mask: { strategy: 'email-domain' } },
                  { path: '$.patients[*].dob', mask: { strategy: 'generalize-date' } },
                ],
              },
              { id: 'read-notes', methods: ['GET'], path: '/api/notes', action: 'allow', masks: [{ path: '$.notes[*].body', mask: { strategy: 'detect' } }] },
              { id: 'masked-misc', methods: ['GET'], path: '/api/*', action: 'allow', masks: [{ path: '$..ssn', mask: { strategy: 'redact' } }] },
              { id: 'echo', path: '/api/echo', action: 'allow' },
              { id: 'stream', methods: ['GET'], path: '/stream/**', action: 'allow' },
            ],
          },
        },
        { name: 'elsewhere', targets: ['records'] },
      ],
      masking: [{ name: 'patient-token', hash: { keyRef: 'env:WARDEN_TEST_HTTP_HASH_KEY', prefix: 'tok_' } }],
      recording: { kind: 'jsonl', path: recording },
    }),
    'http-test',
  );
  agent = await startAgent(config, { baseDir: dir, logger: pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' }) });
  base = `http://127.0.0.1:${agent.addresses.get('records-http')!.port}`;
}, 30_000);

afterAll(async () => {
  await agent?.stop();
  await new Promise((r) => upstream?.close(r));
  await issuer?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function token(groups = ['care'], sub = 'nurse-1'): Promise<string> {
  return issuer.sign({ sub, groups });
}

async function events(): Promise<SessionEvent[]> {
  await agent.recorder.flush();
  return readJsonl(recording);
}

async function sessionOf(status: number, text: string): Promise<SessionEvent[]> {
  const all = await events();
  const st = all.filter((e) => e.type === 'statement' && e.text === text && e.http?.status === status).pop();
  expect(st, `a statement "${text}" with status ${status}`).toBeDefined();
  return all.filter((e) => e.sessionId === st!.sessionId);
}

describe('HTTP targets', () => {
  it('masks JSON fields by path with the SQL strategies, and records the masked response', async () => {
    seen.length = 0;
    const res = await fetch(`${base}/api/patients?name=Ada`, { headers: { authorization: `Bearer ${await token()}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBeNull(); // the body was rewritten: the upstream's validator no longer applies
    const text = await res.text();
    const body = JSON.parse(text) as typeof PATIENTS;
    expect(body.patients[0]).toMatchObject({ id: 1, name: 'Ada Byron', ssn: '*******6789', dob: '1961', contact: { email: '***@example.org', phone: '617-555-0101' } });
    expect(body.patients[1]!.ssn).toBe('*******4321');
    expect(body.patients[0]!.mrn).toMatch(/^tok_[0-9a-f]{24}$/);
    expect(body.patients[0]!.mrn).not.toBe(body.patients[1]!.mrn);
    expect(text).not.toContain('123-45-6789');

    // The upstream got the agent's credential and who is asking, never the client's token.
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers.authorization).toBe('Bearer agent-own-credential');
    expect(seen[0]!.headers['x-warden-subject']).toBe('nurse-1');
    expect(seen[0]!.headers['x-warden-role']).toBe('care-api');
    expect(seen[0]!.url).toBe('/api/patients?name=Ada');
    expect(seen[0]!.headers['accept-encoding']).toBe('identity');

    const session = await sessionOf(200, 'GET /api/patients?name=?');
    expect(session.map((e) => e.type)).toEqual(['session.start', 'statement', 'session.end']);
    const start = session[0]!;
    expect(start.type === 'session.start' && start.identity.subject).toBe('nurse-1');
    const st = session[1]!;
    if (st.type !== 'statement') throw new Error('not a statement');
    expect(st).toMatchObject({ protocol: 'http', decision: 'mask', ruleIds: ['read-patients'], tag: '200', maskedValues: 8 });
    expect(st.http!.maskedFields).toEqual(['$.patients[*].ssn:partial(keep_suffix=4)', '$.patients[*].mrn:patient-token', '$..email:email-domain', '$.patients[*].dob:generalize-date']);
    // The record holds exactly what the client got: same bytes, same hash, no PHI the role may not see.
    expect(st.http!.responseBody).toBe(text);
    expect(st.http!.responseSha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect(JSON.stringify(session)).not.toContain('123-45-6789');
    expect(JSON.stringify(session)).not.toContain('ada@example.org');
  });

  it('detects PHI inside free text fields', async () => {
    const res = await fetch(`${base}/api/notes`, { headers: { authorization: `Bearer ${await token()}` } });
    const body = (await res.json()) as { notes: Array<{ body: string }> };
    expect(body.notes[0]!.body).toBe('Patient SSN [SSN], call [PHONE] on [DATE].');
  });

  it('refuses missing, forged and expired tokens with 401, and tokens without a role on the target with 403', async () => {
    seen.length = 0;
    const none = await fetch(`${base}/api/patients`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('invalid_token');
    expect(((await none.json()) as { message: string }).message).toMatch(/bearer token/);
    const forged = await fetch(`${base}/api/patients`, { headers: { authorization: `Bearer ${issuer.tamper(await token())}` } });
    expect(forged.status).toBe(401);
    const expired = await fetch(`${base}/api/patients`, { headers: { authorization: `Bearer ${await issuer.sign({ sub: 'x', groups: ['care'] }, { expiresIn: -600 })}` } });
    expect(expired.status).toBe(401);
    const noRole = await fetch(`${base}/api/patients`, { headers: { authorization: `Bearer ${await token(['visitors'])}` } });
    expect(noRole.status).toBe(403);
    expect(((await noRole.json()) as { message: string }).message).toMatch(/no Warden role/);
    expect(seen).toHaveLength(0);
    const refusals = (await events()).filter((e) => e.type === 'auth.refused');
    expect(refusals.length).toBeGreaterThanOrEqual(4);
  });

  it('denies by route rule and by default, before anything reaches the upstream', async () => {
    seen.length = 0;
    const auth = { authorization: `Bearer ${await token()}` };
    const admin = await fetch(`${base}/api/admin/users`, { headers: auth });
    expect(admin.status).toBe(403);
    expect(await admin.json()).toMatchObject({ error: 'forbidden', rule: 'no-admin' });
    const del = await fetch(`${base}/api/patients/7`, { method: 'DELETE', headers: auth });
    expect(del.status).toBe(403);
    expect(await del.json()).toMatchObject({ rule: 'default' });
    // A role with no routes at all may do nothing.
    const other = await fetch(`${base}/api/echo`, { headers: { authorization: `Bearer ${await token(['outsiders'])}` } });
    expect(other.status).toBe(403);
    expect(seen).toHaveLength(0);
    const st = (await sessionOf(403, 'GET /api/admin/users'))[1]!;
    expect(st).toMatchObject({ type: 'statement', decision: 'deny', ruleIds: ['no-admin'], error: { code: 'forbidden' } });
  });

  it('refuses paths that could be read two ways instead of normalising them', async () => {
    seen.length = 0;
    const auth = `Bearer ${await token()}`;
    for (const p of ['/api/./admin/users', '/api//admin/users', '/api/%2e%2e/api/admin/users', '/api/admin%2fusers', '/api/patients/../admin/users']) {
      const status = await rawStatus(p, auth);
      expect(status, p).toBe(400);
    }
    expect(seen).toHaveLength(0);
  });

  it('fails closed on a masked route whose response cannot be masked', async () => {
    const auth = { authorization: `Bearer ${await token()}` };
    const html = await fetch(`${base}/api/html`, { headers: auth });
    expect(html.status).toBe(502);
    const htmlText = await html.text();
    expect(htmlText).toContain('not JSON');
    expect(htmlText).not.toContain('123-45-6789');
    const broken = await fetch(`${base}/api/broken`, { headers: auth });
    expect(broken.status).toBe(502);
    expect(await broken.text()).toContain('could not be parsed');
    const big = await fetch(`${base}/api/big`, { headers: auth });
    expect(big.status).toBe(502);
    const bigText = await big.text();
    expect(bigText).toContain('larger than 65536 bytes');
    expect(bigText).not.toContain('123-45-6789');
    const st = (await sessionOf(502, 'GET /api/big'))[1]!;
    expect(st).toMatchObject({ type: 'statement', error: { code: 'unmaskable_response' } });
  });

  it('streams unmasked routes through and records them with their hash; caps request bodies', async () => {
    const auth = { authorization: `Bearer ${await token()}` };
    const res = await fetch(`${base}/stream/x`, { headers: auth });
    const text = await res.text();
    expect(text).toBe('line 0\nline 1\nline 2\nline 3\nline 4\n');
    const st = (await sessionOf(200, 'GET /stream/x'))[1]!;
    if (st.type !== 'statement') throw new Error('not a statement');
    expect(st.decision).toBe('allow');
    expect(st.http!.responseSha256).toBe(createHash('sha256').update(text).digest('hex'));

    seen.length = 0;
    const posted = await fetch(`${base}/api/echo`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ note: 'hello' }) });
    expect(posted.status).toBe(200);
    expect(seen[0]!.body).toBe('{"note":"hello"}');
    const tooBig = await fetch(`${base}/api/echo`, { method: 'POST', headers: auth, body: 'x'.repeat(5000) });
    expect(tooBig.status).toBe(413);
    expect(seen).toHaveLength(1);
  });
});

describe('HTTP targets under a new bundle', () => {
  it('applies new route rules to the next request, on the same listener', async () => {
    const auth = { authorization: `Bearer ${await token()}` };
    expect((await fetch(`${base}/api/echo`, { headers: auth })).status).toBe(200);
    const roles = config.roles.map((r: RoleConfig) =>
      r.name === 'care-api' ? { ...r, http: { defaultAction: 'deny', routes: [{ id: 'echo-closed', path: '/api/echo', action: 'deny' }] } } : r,
    );
    await agent.applyBundle(bundleFromConfig({ ...config, roles }, 'http-test v2'));
    const res = await fetch(`${base}/api/echo`, { headers: auth });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ rule: 'echo-closed' });
  });
});

describe('HTTP targets with a recorder that cannot write', () => {
  it('refuses requests once recording fails: nothing is forwarded unrecorded', async () => {
    const { JsonlRecorder } = await import('../../agent/src/audit/jsonl-recorder.js');
    const full = await startAgent(config, { baseDir: dir, logger: pino({ level: 'silent' }), recorder: new JsonlRecorder('/dev/full') });
    try {
      const url = `http://127.0.0.1:${full.addresses.get('records-http')!.port}/api/echo`;
      const auth = { authorization: `Bearer ${await token()}` };
      await fetch(url, { headers: auth }).then((r) => r.text());
      // The first records are written within milliseconds and fail with ENOSPC.
      await new Promise((r) => setTimeout(r, 150));
      seen.length = 0;
      const res = await fetch(url, { headers: auth });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ message: expect.stringMatching(/cannot record/) });
      expect(seen).toHaveLength(0);
    } finally {
      await full.stop().catch(() => undefined);
    }
  });
});

/** Sends a request target exactly as written (fetch would normalise the dots away). */
function rawStatus(target: string, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = http.request({ host: u.hostname, port: u.port, path: target, headers: { authorization } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
}
