/**
 * Where an issuer's signing keys come from: OpenID discovery names the JWKS
 * URI, jose's remote key set fetches and caches it. Failures here are the
 * IdP's, not the caller's, and are reported as such; they always refuse the
 * login (fail closed), never skip verification.
 */
import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose';
import { AuthError, quote } from './errors.js';

export interface IssuerKeysOptions {
  fetchTimeoutMs: number;
  /** Minimum time between JWKS refetches triggered by an unknown kid. */
  jwksCooldownMs: number;
  /** JWKS is refetched after this long even when every kid is known. */
  jwksCacheMaxAgeMs: number;
  /** Discovery is re-read after this long, in case jwks_uri moved. */
  discoveryMaxAgeMs: number;
}

/** Discovery documents are a few KB; anything far larger is not one. */
const MAX_DISCOVERY_BYTES = 1024 * 1024;

interface Discovered {
  jwksUri: string;
  getKey: JWTVerifyGetKey;
  /** Earliest time to read discovery again. */
  refreshAt: number;
}

/** OpenID Connect Discovery 1.0 §4: the well-known path is appended after removing a trailing slash. */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

export class IssuerKeys {
  private current: Discovered | undefined;
  private pending: Promise<Discovered> | undefined;

  constructor(
    private readonly issuer: string,
    private readonly opts: IssuerKeysOptions,
  ) {}

  /** The key resolver for jwtVerify, discovering the issuer on first use. */
  async resolver(): Promise<JWTVerifyGetKey> {
    const cur = this.current;
    if (cur && Date.now() < cur.refreshAt) return cur.getKey;
    try {
      return (await this.refresh()).getKey;
    } catch (err) {
      // A stale discovery document only says where keys live; signatures are
      // still checked against the live JWKS, so keep using it while the IdP
      // is briefly away, and do not retry on every login meanwhile.
      if (!cur) throw err;
      cur.refreshAt = Date.now() + this.opts.jwksCooldownMs;
      return cur.getKey;
    }
  }

  private refresh(): Promise<Discovered> {
    // Concurrent logins share one discovery fetch.
    this.pending ??= this.discover().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async discover(): Promise<Discovered> {
    const jwksUri = await this.fetchJwksUri();
    const refreshAt = Date.now() + this.opts.discoveryMaxAgeMs;
    if (this.current?.jwksUri === jwksUri) {
      // Keep the existing key set and its cache rather than start cold.
      this.current.refreshAt = refreshAt;
      return this.current;
    }
    const remote = createRemoteJWKSet(new URL(jwksUri), {
      timeoutDuration: this.opts.fetchTimeoutMs,
      cooldownDuration: this.opts.jwksCooldownMs,
      cacheMaxAge: this.opts.jwksCacheMaxAgeMs,
    });
    this.current = { jwksUri, getKey: this.guard(remote), refreshAt };
    return this.current;
  }

  /**
   * Lets "no such key" through for the verifier to explain, and turns every
   * failure to obtain the key set into an IdP error so it is not mistaken
   * for a bad token.
   */
  private guard(remote: JWTVerifyGetKey): JWTVerifyGetKey {
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
        if (err instanceof errors.JWKSInvalid || err instanceof errors.JWKInvalid || err instanceof errors.JOSENotSupported) {
          throw new AuthError(
            `cannot verify token: identity provider ${this.issuer} publishes a signing key set this gateway cannot use (${err.message}); contact the gateway operator`,
            '28P01',
            'idp_misconfigured',
            { cause: err },
          );
        }
        throw this.unreachable('its signing keys (JWKS)', err);
      }
    };
  }

  private async fetchJwksUri(): Promise<string> {
    const url = discoveryUrl(this.issuer);
    let text: string;
    try {
      // Redirects are not followed: the document must come from the issuer itself.
      const res = await fetch(url, {
        method: 'GET',
        redirect: 'manual',
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.opts.fetchTimeoutMs),
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const declared = Number(res.headers.get('content-length') ?? 0);
      if (declared > MAX_DISCOVERY_BYTES) throw new Error('discovery document too large');
      text = await res.text();
      if (text.length > MAX_DISCOVERY_BYTES) throw new Error('discovery document too large');
    } catch (err) {
      throw this.unreachable('its discovery document', err);
    }

    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw this.misconfigured(`${url} did not return JSON`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw this.misconfigured(`${url} did not return a JSON object`);
    const { issuer, jwks_uri: jwksUri } = doc as Record<string, unknown>;
    // Discovery §4.3: the document must name the very issuer we asked about,
    // or an attacker who controls one path could vouch for another issuer.
    if (issuer !== this.issuer) {
      throw this.misconfigured(`${url} names issuer ${quote(issuer)}, not ${quote(this.issuer)} as configured; the configured issuer must match exactly`);
    }
    if (typeof jwksUri !== 'string') throw this.misconfigured(`${url} has no jwks_uri`);
    let parsed: URL;
    try {
      parsed = new URL(jwksUri);
    } catch {
      throw this.misconfigured(`${url} has an invalid jwks_uri ${quote(jwksUri)}`);
    }
    const issuerProtocol = new URL(this.issuer).protocol;
    if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && issuerProtocol === 'http:')) {
      // An https issuer must not send us to fetch keys over plaintext.
      throw this.misconfigured(`${url} gives jwks_uri ${quote(jwksUri)}, which is not https`);
    }
    return parsed.href;
  }

  private unreachable(what: string, err: unknown): AuthError {
    return new AuthError(
      `cannot verify token: identity provider ${this.issuer} could not be reached for ${what} (${describeFetchError(err, this.opts.fetchTimeoutMs)}); try again shortly, and tell the gateway operator if it persists`,
      '28P01',
      'idp_unreachable',
      { cause: err },
    );
  }

  private misconfigured(detail: string): AuthError {
    return new AuthError(
      `cannot verify token: identity provider discovery failed: ${detail}; contact the gateway operator`,
      '28P01',
      'idp_misconfigured',
    );
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError' || err instanceof errors.JWKSTimeout) return `no answer within ${timeoutMs} ms`;
  // undici reports "fetch failed" with the useful part (ECONNREFUSED, ENOTFOUND...) in the cause.
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return `${err.message}: ${cause.message}`;
  return err.message;
}
