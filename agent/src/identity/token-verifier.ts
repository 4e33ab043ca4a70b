/**
 * Verifies the OIDC token an agent presents as its PostgreSQL password.
 *
 * The token only picks which configured issuer to check it against (by its
 * unverified `iss`); everything that decides acceptance comes from config:
 * the algorithms, the audience, the clock skew, and the keys, which are
 * fetched from the configured issuer's own discovery document.
 */
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import type { JwtAlgorithm, OidcIssuerConfig } from '../config/types.js';
import { AuthError, quote, quoteList } from './errors.js';
import { IssuerKeys } from './issuer-keys.js';

export interface VerifiedIdentity {
  subject: string;
  issuer: string;
  groups: string[];
  tokenId?: string;
  expiresAt: Date;
  audience: string[];
}

export interface TokenVerifierOptions {
  /** Timeout for each discovery and JWKS request. Default 5000. */
  fetchTimeoutMs?: number;
  /** Minimum gap between JWKS refetches caused by an unknown kid. Default 30000. */
  jwksCooldownMs?: number;
  /** JWKS is refetched after this long regardless. Default 600000 (10 min). */
  jwksCacheMaxAgeMs?: number;
  /** Discovery is re-read after this long. Default 3600000 (1 h). */
  discoveryMaxAgeMs?: number;
}

/** Asymmetric only: HS* would let anyone holding the (public) key mint tokens, `none` needs no key at all. */
export const SUPPORTED_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'ES256', 'EdDSA'];
const DEFAULT_SKEW_SECONDS = 30;
const MAX_SKEW_SECONDS = 300;
/** Same bound the wire layer puts on a password message. */
const MAX_TOKEN_LENGTH = 32 * 1024;

interface IssuerPolicy {
  issuer: string;
  audiences: string[];
  groupsClaim: string;
  algorithms: JwtAlgorithm[];
  clockSkewSeconds: number;
  keys: IssuerKeys;
}

export class TokenVerifier {
  private readonly policies = new Map<string, IssuerPolicy>();

  /** Throws a plain Error on unsafe or invalid configuration: better not to start than to accept too much. */
  constructor(issuers: OidcIssuerConfig[], options: TokenVerifierOptions = {}) {
    const keyOptions = {
      fetchTimeoutMs: positive(options.fetchTimeoutMs, 5_000, 'fetchTimeoutMs'),
      jwksCooldownMs: nonNegative(options.jwksCooldownMs, 30_000, 'jwksCooldownMs'),
      jwksCacheMaxAgeMs: nonNegative(options.jwksCacheMaxAgeMs, 600_000, 'jwksCacheMaxAgeMs'),
      discoveryMaxAgeMs: nonNegative(options.discoveryMaxAgeMs, 3_600_000, 'discoveryMaxAgeMs'),
    };
    if (issuers.length === 0) throw new Error('identity: at least one OIDC issuer must be configured');
    for (const cfg of issuers) {
      const policy = checkIssuerConfig(cfg);
      if (this.policies.has(policy.issuer)) throw new Error(`identity: issuer ${quote(policy.issuer)} is configured twice`);
      this.policies.set(policy.issuer, { ...policy, keys: new IssuerKeys(policy.issuer, keyOptions) });
    }
  }

  /** Resolves to the verified identity or rejects with an AuthError; never resolves for an unverified token. */
  async verify(token: string): Promise<VerifiedIdentity> {
    if (typeof token !== 'string' || token.length === 0) {
      throw refused('no token given: pass an OIDC access token as the password', 'malformed');
    }
    if (token.length > MAX_TOKEN_LENGTH) throw refused(`token is too long (over ${MAX_TOKEN_LENGTH} characters)`, 'malformed');

    // Unverified reads, used only to choose the policy and to explain refusals.
    let header: ProtectedHeaderParameters;
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      claims = decodeJwt(token);
    } catch {
      throw refused('password is not a signed JWT: pass an OIDC access token (three base64url parts separated by dots)', 'malformed');
    }

    if (typeof claims.iss !== 'string') throw refused('token has no "iss" (issuer) claim', 'missing_claim');
    const policy = this.policies.get(claims.iss);
    if (!policy) {
      throw refused(`token issuer ${quote(claims.iss)} is not trusted by this gateway; get a token from a configured identity provider`, 'wrong_issuer');
    }

    // Checked before any network traffic so junk tokens cost nothing; jwtVerify checks it again.
    if (typeof header.alg !== 'string' || !policy.algorithms.includes(header.alg as JwtAlgorithm)) {
      throw refused(
        `token algorithm ${quote(header.alg ?? 'missing')} is not accepted for issuer ${policy.issuer}; accepted: ${policy.algorithms.join(', ')}`,
        'alg_not_allowed',
      );
    }

    const getKey = await policy.keys.resolver();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        algorithms: policy.algorithms,
        issuer: policy.issuer,
        audience: policy.audiences,
        clockTolerance: policy.clockSkewSeconds,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw explain(err, policy, header, claims);
    }
    return identityFrom(payload, policy);
  }
}

function checkIssuerConfig(cfg: OidcIssuerConfig): Omit<IssuerPolicy, 'keys'> {
  const where = `identity issuer ${quote(cfg.issuer)}`;
  let url: URL;
  try {
    url = new URL(cfg.issuer);
  } catch {
    throw new Error(`${where}: not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`${where}: must be an http(s) URL`);

  const audiences = typeof cfg.audience === 'string' ? [cfg.audience] : [...(cfg.audience ?? [])];
  if (audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a.length === 0)) {
    throw new Error(`${where}: audience must be a non-empty string or list of them`);
  }

  const algorithms = cfg.algorithms === undefined ? [...SUPPORTED_ALGORITHMS] : [...new Set(cfg.algorithms)];
  if (algorithms.length === 0) throw new Error(`${where}: algorithms must not be empty`);
  for (const alg of algorithms) {
    if (!SUPPORTED_ALGORITHMS.includes(alg)) {
      throw new Error(`${where}: algorithm ${quote(alg)} is not allowed; use ${SUPPORTED_ALGORITHMS.join(', ')} (symmetric and unsigned tokens are never accepted)`);
    }
  }

  const skew = cfg.clockSkewSeconds ?? DEFAULT_SKEW_SECONDS;
  if (!Number.isFinite(skew) || skew < 0 || skew > MAX_SKEW_SECONDS) {
    throw new Error(`${where}: clockSkewSeconds must be between 0 and ${MAX_SKEW_SECONDS}`);
  }

  const groupsClaim = cfg.groupsClaim ?? 'groups';
  if (groupsClaim.length === 0) throw new Error(`${where}: groupsClaim must not be empty`);

  return { issuer: cfg.issuer, audiences, groupsClaim, algorithms, clockSkewSeconds: skew };
}

function refused(message: string, reason: AuthError['reason']): AuthError {
  return new AuthError(message, '28P01', reason);
}

const isoTime = (seconds: unknown) =>
  typeof seconds === 'number' && Number.isFinite(seconds) && Math.abs(seconds) < 1e11 ? new Date(seconds * 1000).toISOString() : quote(seconds);

/**
 * Maps jose's failure to a reason and a message the caller can act on. The
 * claims used here are unverified; they only describe the refusal.
 */
function explain(err: unknown, policy: IssuerPolicy, header: ProtectedHeaderParameters, claims: JWTPayload): AuthError {
  if (err instanceof AuthError) return err;
  const fresh = `get a fresh token from ${policy.issuer}`;
  const skew = `(allowing ${policy.clockSkewSeconds}s of clock skew)`;

  if (err instanceof errors.JWTExpired) {
    return refused(`token expired at ${isoTime(claims.exp)} ${skew}; ${fresh}`, 'expired');
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return refused(`token has no ${quote(err.claim)} claim, which is required`, 'missing_claim');
    switch (err.claim) {
      case 'nbf':
        return refused(`token is not valid until ${isoTime(claims.nbf)} ${skew}; check the clocks or wait`, 'not_yet_valid');
      case 'aud':
        return refused(
          `token audience ${quoteList(audienceList(claims.aud))} does not include ${policy.audiences.map((a) => quote(a)).join(' or ')}; request a token for this gateway's audience`,
          'wrong_audience',
        );
      case 'iss':
        return refused(`token issuer ${quote(claims.iss)} is not ${quote(policy.issuer)}`, 'wrong_issuer');
      default:
        return refused(`token claim ${quote(err.claim)} is invalid (${err.message})`, 'malformed');
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return refused(`token algorithm ${quote(header.alg)} is not accepted; accepted: ${policy.algorithms.join(', ')}`, 'alg_not_allowed');
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    const kid = header.kid === undefined ? 'no key id (kid)' : `key id ${quote(header.kid)}`;
    return refused(`token is signed with ${kid}, which ${policy.issuer} does not publish for ${header.alg}; the key may have been rotated out, so ${fresh}`, 'unknown_key');
  }
  if (err instanceof errors.JWKSMultipleMatchingKeys) {
    return refused(`token has no key id (kid) and ${policy.issuer} publishes several ${header.alg} keys; tokens must name their key`, 'unknown_key');
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return refused(`token signature is invalid: it was not signed by ${policy.issuer}, or it was altered after signing`, 'bad_signature');
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return refused(`token is malformed (${err.message})`, 'malformed');
  }
  // Anything else (a key of the wrong type or size, say) still means "not verified".
  return refused('token could not be verified', 'bad_signature');
}

function identityFrom(payload: JWTPayload, policy: IssuerPolicy): VerifiedIdentity {
  if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
    throw refused('token "sub" (subject) claim must be a non-empty string', 'missing_claim');
  }
  if (typeof payload.exp !== 'number') throw refused('token "exp" claim must be a number', 'malformed');
  const identity: VerifiedIdentity = {
    subject: payload.sub,
    issuer: policy.issuer,
    groups: readGroups(payload, policy.groupsClaim),
    expiresAt: new Date(payload.exp * 1000),
    audience: audienceList(payload.aud),
  };
  if (typeof payload.jti === 'string' && payload.jti.length > 0) identity.tokenId = payload.jti;
  return identity;
}

function audienceList(aud: unknown): string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
}

/**
 * Groups from `claim`: the claim name as given if present (namespaced claims
 * like `https://example.com/groups` contain dots), otherwise a dot path such
 * as `realm_access.roles`. Absent means no groups; the wrong shape is refused
 * rather than half-read.
 */
export function readGroups(payload: Record<string, unknown>, claim: string): string[] {
  let value: unknown;
  if (Object.hasOwn(payload, claim)) {
    value = payload[claim];
  } else {
    value = payload;
    for (const part of claim.split('.')) {
      // Own properties only: a path like `__proto__.x` must not reach Object.prototype.
      if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) {
        value = undefined;
        break;
      }
      value = (value as Record<string, unknown>)[part];
    }
  }
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return value.length > 0 ? [value] : [];
  if (Array.isArray(value) && value.every((g): g is string => typeof g === 'string')) {
    return [...new Set(value.filter((g) => g.length > 0))];
  }
  throw refused(`token claim ${quote(claim)} must be a string or a list of strings`, 'malformed');
}

function positive(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`identity: ${name} must be a positive integer`);
  return v;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0) throw new Error(`identity: ${name} must not be negative`);
  return v;
}
