/**
 * The test issuer must behave like a real IdP or the verifier tests prove
 * nothing: its tokens verify against its own published JWKS, and its token
 * endpoint follows RFC 6749's client_credentials rules.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { basicAuthHeader, startOidcIssuer, type TestIssuer } from './oidc-issuer.js';

const CLIENT = { clientId: 'bot', clientSecret: 'pa ss:wörd', groups: ['g1', 'g2'], audience: ['warden', 'other'] };
let issuer: TestIssuer;

beforeAll(async () => {
  issuer = await startOidcIssuer({ clients: [CLIENT] });
});

afterAll(async () => {
  await issuer?.close();
});

async function getJson(path: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${issuer.issuer}${path}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

async function publishedKeys() {
  return createLocalJWKSet((await getJson('/jwks')) as unknown as JSONWebKeySet);
}

function postToken(form: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(issuer.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
  });
}

describe('discovery and JWKS', () => {
  it('serves a discovery document naming itself', async () => {
    const doc = await getJson('/.well-known/openid-configuration');
    expect(doc).toMatchObject({
      issuer: issuer.issuer,
      jwks_uri: `${issuer.issuer}/jwks`,
      token_endpoint: `${issuer.issuer}/token`,
      id_token_signing_alg_values_supported: ['RS256', 'ES256', 'EdDSA'],
    });
    expect(doc.grant_types_supported).toContain('client_credentials');
    expect(issuer.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('publishes one public key per algorithm, with kids, and counts fetches', async () => {
    const before = issuer.jwksRequests;
    const { keys } = (await getJson('/jwks')) as { keys: Record<string, unknown>[] };
    expect(issuer.jwksRequests).toBe(before + 1);
    expect(keys.map((k) => k.alg)).toEqual(['RS256', 'ES256', 'EdDSA']);
    expect(keys.map((k) => k.kid)).toEqual(Object.values(issuer.kids()));
    for (const k of keys) {
      expect(k).toMatchObject({ use: 'sig' });
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(k).not.toHaveProperty(secret);
    }
  });

  it('signs with every algorithm so the published keys verify the tokens', async () => {
    const keys = await publishedKeys();
    for (const alg of ['RS256', 'ES256', 'EdDSA']) {
      const { payload, protectedHeader } = await jwtVerify(await issuer.sign({ groups: ['x'] }, { alg }), keys);
      expect(protectedHeader).toMatchObject({ alg, kid: issuer.kids()[alg as 'RS256'] });
      expect(payload).toMatchObject({ iss: issuer.issuer, sub: 'agent-1', aud: 'warden', groups: ['x'] });
      expect(payload.exp! - payload.iat!).toBe(300);
      expect(typeof payload.jti).toBe('string');
    }
  });

  it('lets claims override defaults and options, and drops claims set to undefined', async () => {
    const t = await issuer.sign({ sub: 'custom', exp: 123, aud: undefined }, { expiresIn: 5, notBefore: 60, audience: 'ignored' });
    const claims = decodeJwt(t);
    expect(claims).toMatchObject({ sub: 'custom', exp: 123, nbf: claims.iat! + 60 });
    expect(claims).not.toHaveProperty('aud');
  });

  it('rotates to new kids and drops the old keys from the JWKS', async () => {
    const rotating = await startOidcIssuer({ algorithms: ['ES256'] });
    try {
      const old = await rotating.sign({});
      const oldKid = rotating.kids().ES256;
      await rotating.rotateKeys();
      expect(rotating.kids().ES256).not.toBe(oldKid);
      const res = await fetch(`${rotating.issuer}/jwks`);
      const jwks = (await res.json()) as JSONWebKeySet;
      expect(jwks.keys.map((k) => k.kid)).toEqual([rotating.kids().ES256]);
      await expect(jwtVerify(old, createLocalJWKSet(jwks))).rejects.toThrow();
      await expect(jwtVerify(await rotating.sign({}), createLocalJWKSet(jwks))).resolves.toBeTruthy();
      await expect(rotating.sign({}, { alg: 'RS256' })).rejects.toThrow(/no RS256 key/);
    } finally {
      await rotating.close();
    }
  });
});

describe('hostile helpers', () => {
  it('builds an unsigned token', () => {
    const t = issuer.unsignedToken({ groups: ['g'] });
    expect(decodeProtectedHeader(t)).toMatchObject({ alg: 'none' });
    expect(t.endsWith('.')).toBe(true);
  });

  it('builds an HS256 token under the RSA kid', async () => {
    const t = await issuer.hs256WithPublicKey({});
    expect(decodeProtectedHeader(t)).toMatchObject({ alg: 'HS256', kid: issuer.kids().RS256 });
  });

  it('tampers with the payload only', async () => {
    const t = await issuer.sign({});
    const forged = issuer.tamper(t);
    const [h, , s] = t.split('.');
    const [fh, , fs] = forged.split('.');
    expect([fh, fs]).toEqual([h, s]);
    expect(decodeJwt(forged).sub).toBe('admin');
    await expect(jwtVerify(forged, await publishedKeys())).rejects.toThrow(/signature/);
  });
});

describe('client_credentials token endpoint', () => {
  it('accepts client_secret_basic', async () => {
    const res = await postToken({ grant_type: 'client_credentials' }, { authorization: basicAuthHeader(CLIENT.clientId, CLIENT.clientSecret) });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as { access_token: string; token_type: string; expires_in: number };
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 300 });
    const { payload } = await jwtVerify(body.access_token, await publishedKeys(), { issuer: issuer.issuer, audience: 'warden' });
    expect(payload).toMatchObject({ sub: 'bot', client_id: 'bot', groups: ['g1', 'g2'], aud: ['warden', 'other'] });
  });

  it('accepts client_secret_post', async () => {
    const res = await postToken({ grant_type: 'client_credentials', client_id: CLIENT.clientId, client_secret: CLIENT.clientSecret });
    expect(res.status).toBe(200);
  });

  it.each([
    ['wrong secret (basic)', { grant_type: 'client_credentials' }, { authorization: basicAuthHeader('bot', 'nope') }, 401, 'invalid_client'],
    ['wrong secret (post)', { grant_type: 'client_credentials', client_id: 'bot', client_secret: 'nope' }, {}, 401, 'invalid_client'],
    ['unknown client', { grant_type: 'client_credentials', client_id: 'who', client_secret: 'x' }, {}, 401, 'invalid_client'],
    ['no credentials', { grant_type: 'client_credentials' }, {}, 401, 'invalid_client'],
    ['two auth methods', { grant_type: 'client_credentials', client_id: 'bot', client_secret: CLIENT.clientSecret }, { authorization: basicAuthHeader('bot', CLIENT.clientSecret) }, 400, 'invalid_request'],
    ['another grant', { grant_type: 'password', client_id: 'bot', client_secret: CLIENT.clientSecret }, {}, 400, 'unsupported_grant_type'],
  ])('refuses %s', async (_, form, headers, status, error) => {
    const res = await postToken(form, headers);
    expect(res.status).toBe(status);
    expect(await res.json()).toMatchObject({ error });
  });

  it('only a Basic attempt gets a Basic challenge', async () => {
    const basic = await postToken({ grant_type: 'client_credentials' }, { authorization: basicAuthHeader('bot', 'nope') });
    expect(basic.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const post = await postToken({ grant_type: 'client_credentials', client_id: 'bot', client_secret: 'nope' });
    expect(post.headers.get('www-authenticate')).toBeNull();
  });

  it('refuses GET and non-form bodies', async () => {
    expect((await fetch(issuer.tokenEndpoint)).status).toBe(405);
    const res = await fetch(issuer.tokenEndpoint, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(400);
  });
});

describe('availability', () => {
  it('can fail, hang, and still close promptly', async () => {
    const idp = await startOidcIssuer();
    idp.setAvailability('error');
    expect((await fetch(`${idp.issuer}/jwks`)).status).toBe(503);
    idp.setAvailability('hang');
    const hung = fetch(`${idp.issuer}/jwks`).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await idp.close();
    expect(await hung).toBeInstanceOf(Error);
  });
});
