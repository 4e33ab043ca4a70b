/**
 * Authenticate for HTTP: the bearer token of each request, verified and
 * mapped to one role like every other path (identity/authorize.ts).
 *
 * HTTP clients send the same token with every request, and verifying a
 * signature per request would cost more than the rest of the proxy. So a
 * verified token's identity is remembered — keyed by the token's SHA-256,
 * per verifier (a new bundle starts afresh) — for at most CACHE_TTL_MS and
 * never past its `exp`. The role is still resolved per request, against the
 * bundle in force.
 */
import { createHash } from 'node:crypto';
import { AuthError, authorizeToken, type AuthContext, type Authenticated, type TokenVerifier, type VerifiedIdentity } from '../../identity/index.js';

const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 10_000;

type Verify = Pick<TokenVerifier, 'verify'>;
const caches = new WeakMap<Verify, Map<string, { identity: VerifiedIdentity; until: number }>>();

function cachedVerifier(verifier: Verify): Verify {
  let cache = caches.get(verifier);
  if (!cache) caches.set(verifier, (cache = new Map()));
  const entries = cache;
  return {
    async verify(token: string): Promise<VerifiedIdentity> {
      const key = createHash('sha256').update(token).digest('base64');
      const now = Date.now();
      const hit = entries.get(key);
      if (hit && hit.until > now) return hit.identity;
      const identity = await verifier.verify(token);
      // Oldest first out: a Map iterates in insertion order.
      if (entries.size >= CACHE_MAX) entries.delete(entries.keys().next().value!);
      entries.set(key, { identity, until: Math.min(now + CACHE_TTL_MS, identity.expiresAt.getTime()) });
      return identity;
    },
  };
}

export function bearerToken(header: string | undefined): string {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!m) throw new AuthError('no bearer token: send an OIDC access token as "Authorization: Bearer <token>"', '28P01', 'malformed');
  return m[1]!;
}

export function authenticateRequest(authorization: string | undefined, auth: AuthContext): Promise<Authenticated> {
  return authorizeToken(bearerToken(authorization), { ...auth, verifier: cachedVerifier(auth.verifier) });
}
