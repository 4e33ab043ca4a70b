/**
 * Client authentication: the agent asks for a cleartext password, which is
 * an OIDC token. It is verified (signature, issuer, audience, lifetime,
 * pinned algorithms) and its groups mapped to exactly one Warden role that
 * must be allowed on this listener's target. Nothing has touched the
 * upstream yet; a refusal ends here.
 */
import { backend } from './wire/backend-messages.js';
import { HandshakeError, type HandshakeReader } from './wire/handshake-reader.js';
import { AuthError } from '../../identity/index.js';
import { authorizeToken, type AuthContext, type Authenticated } from '../../identity/authorize.js';
import type net from 'node:net';

/** JWTs with many groups run to a few KB; anything near this is not a token. */
const MAX_PASSWORD_MESSAGE = 32 * 1024;

export type { AuthContext, Authenticated };

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
  return authorizeToken(token, ctx);
}
