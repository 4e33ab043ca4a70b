/**
 * From a presented token to the one role a session runs as, the same for
 * every protocol: verify the token (signature, issuer, audience, lifetime,
 * pinned algorithms), map its groups to exactly one role, and check that
 * the role may use this listener's target. Engines only differ in how the
 * token arrives (PostgreSQL password, HTTP bearer, SSH password).
 */
import type { GroupMapping, RoleConfig } from '../config/types.js';
import { AuthError } from './errors.js';
import { resolveRole } from './role-mapping.js';
import type { TokenVerifier, VerifiedIdentity } from './token-verifier.js';

export interface AuthContext {
  verifier: Pick<TokenVerifier, 'verify'>;
  /** Group → role mappings that apply to tokens from an issuer. */
  groupMappings: (issuer: string) => GroupMapping[];
  roles: Map<string, RoleConfig>;
  target: string;
}

export interface Authenticated {
  identity: VerifiedIdentity;
  role: RoleConfig;
}

export async function authorizeToken(token: string, ctx: AuthContext): Promise<Authenticated> {
  const identity = await ctx.verifier.verify(token);
  const roleName = resolveRole(identity, ctx.groupMappings(identity.issuer));
  const role = ctx.roles.get(roleName);
  if (!role) {
    throw new AuthError(`role "${roleName}" is mapped but not defined`, '28000', 'no_role');
  }
  if (!role.targets.includes(ctx.target)) {
    throw new AuthError(`role "${roleName}" may not connect to target "${ctx.target}"`, '28000', 'no_role');
  }
  return { identity, role };
}
