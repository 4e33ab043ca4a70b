/**
 * Authenticate for SSH: the client's password (or its keyboard-interactive
 * answer) is an OIDC access token, verified and mapped to one role exactly
 * as on the PostgreSQL and HTTP paths. Public keys are not accepted: the
 * token is what ties a session to a person.
 */
import type ssh2 from 'ssh2';
import { AuthError, authorizeToken, type AuthContext, type Authenticated } from '../../identity/index.js';

/** Attempts before the connection is dropped. */
export const MAX_AUTH_ATTEMPTS = 3;

export type AuthAttempt = { ok: true; authed: Authenticated; username: string } | { ok: false; error: AuthError; username: string };

/** Reads the token from one authentication request; undefined when the method is not one that carries a token. */
function tokenFrom(ctx: ssh2.AuthContext): Promise<string> | undefined {
  if (ctx.method === 'password') return Promise.resolve(ctx.password);
  if (ctx.method === 'keyboard-interactive') {
    return new Promise((resolve) =>
      ctx.prompt([{ prompt: 'OIDC access token: ', echo: false }], 'Warden', 'Paste an OIDC access token from your identity provider.', (answers) => resolve(answers[0] ?? '')),
    );
  }
  return undefined;
}

/**
 * Handles one authentication request: rejects it (offering only the
 * token-carrying methods) unless the token maps to a role allowed on the
 * target. A success is returned unanswered: the caller keeps the identity,
 * then accepts (ssh2 starts the session as soon as it does). Undefined for
 * a method that was merely declined (none, publickey).
 */
export async function authenticateRequest(ctx: ssh2.AuthContext, auth: AuthContext): Promise<AuthAttempt | undefined> {
  const token = tokenFrom(ctx);
  if (!token) {
    ctx.reject(['keyboard-interactive', 'password']);
    return undefined;
  }
  try {
    const value = (await token).trim();
    if (!value) throw new AuthError('no token given: use an OIDC access token as the password', '28P01', 'malformed');
    const authed = await authorizeToken(value, auth);
    return { ok: true, authed, username: ctx.username };
  } catch (err) {
    ctx.reject(['keyboard-interactive', 'password']);
    const error = err instanceof AuthError ? err : new AuthError((err as Error).message, '28000', 'no_role');
    return { ok: false, error, username: ctx.username };
  }
}
