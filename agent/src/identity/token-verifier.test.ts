/**
 * TokenVerifier against a real issuer over HTTP with real keys: every accept
 * and every refusal here went through actual signature checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from 'jose';
import { basicAuthHeader, startOidcIssuer, type TestIssuer } from '../../../test/support/oidc-issuer.js';
import type { GroupMapping, JwtAlgorithm, OidcIssuerConfig } from '../config/types.js';
import { AuthError, resolveRole, TokenVerifier, type TokenVerifierOptions } from './index.js';

let issuer: TestIssuer;
const now = () => Math.floor(Date.now() / 1000);

const CLIENT = { clientId: 'analytics-bot', clientSecret: 's3cret:with/odd+chars', groups: ['warden-analysts'], audience: 'warden' };

beforeAll(async () => {
  issuer = await startOidcIssuer({ clients: [CLIENT] });
});

afterAll(async () => {
  await issuer?.close();
});

/** A fresh verifier (cold caches) for the shared issuer. Cooldown 0 so an unknown kid always refetches. */
function verifierFor(
  target: TestIssuer = issuer,
  cfg: Partial<OidcIssuerConfig> = {},
  opts: TokenVerifierOptions = {},
): TokenVerifier {
  return new TokenVerifier([{ issuer: target.issuer, audience: 'warden', ...cfg }], { jwksCooldownMs: 0, fetchTimeoutMs: 2000, ...opts });
}

async function refusal(p: Promise<unknown>): Promise<AuthError> {
  const outcome = await p.then(
    () => new Error('token was accepted'),
    (e: unknown) => e,
  );
  expect(outcome).toBeInstanceOf(AuthError);
  return outcome as AuthError;
}

describe('accepts valid tokens', () => {
  it.each<JwtAlgorithm>(['RS256', 'ES256', 'EdDSA'])('%s', async (alg) => {
    const token = await issuer.sign({ sub: 'bot-7', groups: ['warden-analysts', 'staff'], jti: 'tok-1' }, { alg });
    const id = await verifierFor().verify(token);
    expect(id.subject).toBe('bot-7');
    expect(id.issuer).toBe(issuer.issuer);
    expect(id.groups).toEqual(['warden-analysts', 'staff']);
    expect(id.tokenId).toBe('tok-1');
    expect(id.audience).toEqual(['warden']);
    expect(Math.abs(id.expiresAt.getTime() - (now() + 300) * 1000)).toBeLessThan(5000);
  });

  it('accepts any of several configured audiences and reports all the token had', async () => {
    const token = await issuer.sign({}, { audience: ['other-api', 'warden-eu'] });
    const id = await verifierFor(issuer, { audience: ['warden-us', 'warden-eu'] }).verify(token);
    expect(id.audience).toEqual(['other-api', 'warden-eu']);
  });

  it('reads groups from a dot path, a single string, or a namespaced claim', async () => {
    const nested = await issuer.sign({ realm_access: { roles: ['clinicians'] } });
    expect((await verifierFor(issuer, { groupsClaim: 'realm_access.roles' }).verify(nested)).groups).toEqual(['clinicians']);

    const single = await issuer.sign({ groups: 'clinicians' });
    expect((await verifierFor().verify(single)).groups).toEqual(['clinicians']);

    const namespaced = await issuer.sign({ 'https://warden.example/groups': ['a', 'b'] });
    expect((await verifierFor(issuer, { groupsClaim: 'https://warden.example/groups' }).verify(namespaced)).groups).toEqual(['a', 'b']);

    const none = await issuer.sign({ groups: undefined });
    expect((await verifierFor().verify(none)).groups).toEqual([]);
  });

  it('refuses a groups claim of the wrong shape instead of half-reading it', async () => {
    const err = await refusal(verifierFor().verify(await issuer.sign({ groups: ['ok', 42] })));
    expect(err.reason).toBe('malformed');
  });

  it('does not follow a groups path into the prototype chain', async () => {
    const id = await verifierFor(issuer, { groupsClaim: '__proto__.constructor' }).verify(await issuer.sign({}));
    expect(id.groups).toEqual([]);
  });
});

describe('lifetime', () => {
  it('refuses an expired token, saying when it expired and what to do', async () => {
    const exp = now() - 600;
    const token = await issuer.sign({ exp, iat: exp - 300 });
    const err = await refusal(verifierFor().verify(token));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'expired' });
    expect(err.message).toContain(new Date(exp * 1000).toISOString());
    expect(err.message).toMatch(/fresh token/);
    expect(err.message).not.toContain(token.split('.')[2]);
  });

  it('refuses a token whose nbf is beyond the allowed skew', async () => {
    const err = await refusal(verifierFor().verify(await issuer.sign({}, { notBefore: 600 })));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'not_yet_valid' });
    expect(err.message).toMatch(/not valid until \d{4}-/);
  });

  it('accepts exp and nbf within the skew, and refuses them with no skew', async () => {
    const token = await issuer.sign({ exp: now() - 10, nbf: now() + 10 });
    await expect(verifierFor().verify(token)).resolves.toMatchObject({ subject: 'agent-1' });
    const err = await refusal(verifierFor(issuer, { clockSkewSeconds: 0 }).verify(token));
    expect(['expired', 'not_yet_valid']).toContain(err.reason);
  });
});

describe('refuses forged and misdirected tokens', () => {
  it('wrong issuer, without contacting anyone', async () => {
    const before = issuer.discoveryRequests + issuer.jwksRequests;
    const err = await refusal(verifierFor().verify(await issuer.sign({}, { issuer: 'https://evil.example.com' })));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'wrong_issuer' });
    expect(err.message).toContain('https://evil.example.com');
    expect(issuer.discoveryRequests + issuer.jwksRequests).toBe(before);
  });

  it('wrong audience', async () => {
    const err = await refusal(verifierFor().verify(await issuer.sign({}, { audience: 'someone-else' })));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'wrong_audience' });
    expect(err.message).toMatch(/audience.*"someone-else".*"warden"/);
  });

  it('alg none', async () => {
    const err = await refusal(verifierFor().verify(issuer.unsignedToken({ groups: ['warden-analysts'] })));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'alg_not_allowed' });
  });

  it('HS256 keyed with the RSA public key (key confusion)', async () => {
    const token = await issuer.hs256WithPublicKey({ groups: ['warden-analysts'] });
    const err = await refusal(verifierFor().verify(token));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'alg_not_allowed' });
    expect(err.message).toMatch(/algorithm "HS256"/);
  });

  it('a genuine token in an algorithm the config does not pin', async () => {
    const err = await refusal(verifierFor(issuer, { algorithms: ['ES256'] }).verify(await issuer.sign({}, { alg: 'RS256' })));
    expect(err).toMatchObject({ reason: 'alg_not_allowed' });
    expect(err.message).toMatch(/accepted: ES256$/);
  });

  it('a tampered payload', async () => {
    const token = issuer.tamper(await issuer.sign({ groups: ['nobody'] }), { groups: ['warden-admins'] });
    const err = await refusal(verifierFor().verify(token));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'bad_signature' });
    expect(err.message).toMatch(/signature/);
  });

  it('a token signed by a foreign key under a published kid', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const err = await refusal(verifierFor().verify(await issuer.sign({}, { key: privateKey, kid: issuer.kids().RS256! })));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'bad_signature' });
  });

  it('missing sub or exp', async () => {
    const noSub = await refusal(verifierFor().verify(await issuer.sign({ sub: undefined })));
    expect(noSub).toMatchObject({ sqlState: '28P01', reason: 'missing_claim' });
    expect(noSub.message).toMatch(/"sub"/);
    const noExp = await refusal(verifierFor().verify(await issuer.sign({ exp: undefined })));
    expect(noExp).toMatchObject({ reason: 'missing_claim' });
    expect(noExp.message).toMatch(/"exp"/);
  });

  it('things that are not JWTs', async () => {
    for (const junk of ['', 'hunter2', 'a.b.c', 'a.b.c.d.e']) {
      expect(await refusal(verifierFor().verify(junk))).toMatchObject({ sqlState: '28P01', reason: 'malformed' });
    }
  });
});

describe('signing keys', () => {
  it('caches discovery and the JWKS across verifications', async () => {
    const v = verifierFor();
    const jwks = issuer.jwksRequests;
    const discovery = issuer.discoveryRequests;
    for (const alg of ['RS256', 'ES256', 'EdDSA', 'RS256'] as const) await v.verify(await issuer.sign({}, { alg }));
    expect(issuer.jwksRequests - jwks).toBe(1);
    expect(issuer.discoveryRequests - discovery).toBe(1);
  });

  it('refetches the JWKS for an unknown kid, then refuses', async () => {
    const v = verifierFor();
    await v.verify(await issuer.sign({}));
    const before = issuer.jwksRequests;
    const err = await refusal(v.verify(await issuer.sign({}, { kid: 'no-such-key' })));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'unknown_key' });
    expect(err.message).toMatch(/key id "no-such-key"/);
    expect(issuer.jwksRequests).toBe(before + 1);
  });

  it('refuses a token signed with a key the JWKS does not publish', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const token = await issuer.sign({}, { alg: 'ES256', key: privateKey, kid: 'attacker-key' });
    expect(await refusal(verifierFor().verify(token))).toMatchObject({ reason: 'unknown_key' });
  });

  it('does not let unknown kids trigger a refetch within the cooldown', async () => {
    const v = verifierFor(issuer, {}, { jwksCooldownMs: 60_000 });
    await v.verify(await issuer.sign({}));
    const before = issuer.jwksRequests;
    for (let i = 0; i < 5; i++) await refusal(v.verify(await issuer.sign({}, { kid: `random-${i}` })));
    expect(issuer.jwksRequests).toBe(before);
  });

  it('follows key rotation: new kids verify after a refetch, old ones are refused', async () => {
    const rotating = await startOidcIssuer();
    try {
      const v = verifierFor(rotating);
      const old = await rotating.sign({ sub: 'before' });
      await expect(v.verify(old)).resolves.toMatchObject({ subject: 'before' });
      const oldKid = rotating.kids().RS256;

      await rotating.rotateKeys();
      expect(rotating.kids().RS256).not.toBe(oldKid);
      const fetched = rotating.jwksRequests;
      await expect(v.verify(await rotating.sign({ sub: 'after' }))).resolves.toMatchObject({ subject: 'after' });
      expect(rotating.jwksRequests).toBe(fetched + 1);

      expect(await refusal(v.verify(old))).toMatchObject({ reason: 'unknown_key' });
    } finally {
      await rotating.close();
    }
  });
});

describe('when the identity provider is unavailable', () => {
  it('fails closed with idp_unreachable when nothing listens', async () => {
    const gone = await startOidcIssuer();
    const token = await gone.sign({});
    await gone.close();
    const err = await refusal(verifierFor(gone).verify(token));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'idp_unreachable' });
    expect(err.message).toContain(gone.issuer);
    expect(err.message).toMatch(/could not be reached.*ECONNREFUSED/);
    expect(err.message).not.toContain(token);
  });

  it('reports an HTTP error or a hang as unreachable, and recovers without a restart', async () => {
    const flaky = await startOidcIssuer();
    try {
      const v = verifierFor(flaky, {}, { fetchTimeoutMs: 200 });
      const token = await flaky.sign({});
      flaky.setAvailability('error');
      expect(await refusal(v.verify(token))).toMatchObject({ reason: 'idp_unreachable', message: expect.stringMatching(/HTTP 503/) });
      flaky.setAvailability('hang');
      expect(await refusal(v.verify(token))).toMatchObject({ reason: 'idp_unreachable', message: expect.stringMatching(/no answer within 200 ms/) });
      flaky.setAvailability('up');
      await expect(v.verify(token)).resolves.toMatchObject({ subject: 'agent-1' });
    } finally {
      await flaky.close();
    }
  });

  it('refuses when the JWKS cannot be refetched for a new kid', async () => {
    const flaky = await startOidcIssuer();
    try {
      const v = verifierFor(flaky);
      await v.verify(await flaky.sign({}));
      await flaky.rotateKeys();
      flaky.setAvailability('error');
      const err = await refusal(v.verify(await flaky.sign({})));
      expect(err).toMatchObject({ sqlState: '28P01', reason: 'idp_unreachable' });
      expect(err.message).toMatch(/JWKS/);
    } finally {
      await flaky.close();
    }
  });

  it('refuses when discovery names a different issuer than configured', async () => {
    // Trailing slash: same server, but not the exact issuer string it announces.
    const slashed = `${issuer.issuer}/`;
    const v = new TokenVerifier([{ issuer: slashed, audience: 'warden' }]);
    const err = await refusal(v.verify(await issuer.sign({}, { issuer: slashed })));
    expect(err).toMatchObject({ sqlState: '28P01', reason: 'idp_misconfigured' });
    expect(err.message).toMatch(/must match exactly/);
  });
});

describe('configuration', () => {
  const base = { issuer: 'https://idp.example.com', audience: 'warden' };
  it.each([
    ['HS256', { algorithms: ['HS256'] }],
    ['none', { algorithms: ['none'] }],
    ['skew over 300s', { clockSkewSeconds: 301 }],
    ['negative skew', { clockSkewSeconds: -1 }],
    ['empty audience', { audience: [] }],
  ])('rejects %s', (_, extra) => {
    expect(() => new TokenVerifier([{ ...base, ...(extra as Partial<OidcIssuerConfig>) }])).toThrow();
  });

  it('rejects the same issuer twice and an empty list', () => {
    expect(() => new TokenVerifier([base, base])).toThrow(/twice/);
    expect(() => new TokenVerifier([])).toThrow();
  });
});

describe('role mapping of verified identities', () => {
  const mappings: GroupMapping[] = [
    { group: 'warden-analysts', role: 'analyst' },
    { group: 'data-science', role: 'analyst' },
    { group: 'dba', role: 'admin' },
  ];

  it('maps to exactly one role, even via several groups', async () => {
    const id = await verifierFor().verify(await issuer.sign({ groups: ['warden-analysts', 'data-science', 'unrelated'] }));
    expect(resolveRole(id, mappings)).toBe('analyst');
  });

  it('refuses a valid token whose groups map to no role (28000)', async () => {
    const id = await verifierFor().verify(await issuer.sign({ groups: ['interns'] }));
    const err = await refusal(Promise.resolve().then(() => resolveRole(id, mappings)));
    expect(err).toMatchObject({ sqlState: '28000', reason: 'no_role' });
    expect(err.message).toMatch(/"interns"/);
    expect(err.message).toMatch(/no group mapping/);
  });

  it('refuses groups that map to two roles, naming them (28000)', async () => {
    const id = await verifierFor().verify(await issuer.sign({ groups: ['warden-analysts', 'dba'] }));
    const err = await refusal(Promise.resolve().then(() => resolveRole(id, mappings)));
    expect(err).toMatchObject({ sqlState: '28000', reason: 'ambiguous_role' });
    expect(err.message).toMatch(/"analyst".*"admin"/);
  });
});

describe('client_credentials tokens from the token endpoint', () => {
  async function requestToken(headers: Record<string, string>, form: Record<string, string>) {
    return fetch(`${issuer.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form),
    });
  }

  it('issues a token via client_secret_basic that the verifier accepts', async () => {
    const res = await requestToken({ authorization: basicAuthHeader(CLIENT.clientId, CLIENT.clientSecret) }, { grant_type: 'client_credentials' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; token_type: string; expires_in: number };
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBe(300);
    const id = await verifierFor().verify(body.access_token);
    expect(id).toMatchObject({ subject: CLIENT.clientId, groups: CLIENT.groups, audience: ['warden'] });
    expect(resolveRole(id, [{ group: 'warden-analysts', role: 'analyst' }])).toBe('analyst');
  });

  it('refuses a wrong secret with 401 invalid_client', async () => {
    const res = await requestToken({ authorization: basicAuthHeader(CLIENT.clientId, 'wrong') }, { grant_type: 'client_credentials' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect(await res.json()).toMatchObject({ error: 'invalid_client' });
  });
});
