/**
 * Client authentication: the agent asks for a cleartext password, which is
 * an OIDC token. It is verified (signature, issuer, audience, lifetime,
 * pinned algorithms) and its groups mapped to exactly one Warden role that
 * must be allowed on this listener's target. Nothing has touched the
 * upstream yet; a refusal ends here.
 */
import { backend } from './wire/backend-messages.js';
import { HandshakeError, type HandshakeReader } from './wire/handshake-reader.js';
import { AuthError, resolveRole, type TokenVerifier, type VerifiedIdentity } from '../../identity/index.js';
import type { GroupMapping, RoleConfig } from '../../config/types.js';
import type net from 'node:net';

/** JWTs with many groups run to a few KB; anything near this is not a token. */
const MAX_PASSWORD_MESSAGE = 32 * 1024;

export interface AuthContext {
  verifier: TokenVerifier;
  /** Group → role mappings that apply to tokens from an issuer. */
  groupMappings: (issuer: string) => GroupMapping[];
  roles: Map<string, RoleConfig>;
  target: string;
}

export interface Authenticated {
  identity: VerifiedIdentity;
  role: RoleConfig;
}

export async function authenticateClient(
  socket: net.Socket,
  reader: HandshakeReader,
  ctx: AuthContext,
): Promise<Authenticated> {
  socket.write(backend.authenticationCleartextPassword());
  const msg = await reader.typedMessage(0x70 /* p */, MAX_PASSWORD_MESSAGE);
  const end = msg.indexOf(0, 5);
  if (end !== msg.length - 1) throw new HandshakeError('malformed password message');
  const token = msg.toString('utf8', 5, end).trim();
  if (token.length === 0) {
    throw new AuthError('no token given: pass an OIDC access token as the password', '28P01', 'malformed');
  }
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
