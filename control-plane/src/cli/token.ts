/**
 * `warden token`: fetches an access token for an AI agent from its identity
 * provider with the OAuth 2.0 client credentials grant (issuer discovery via
 * openid-client), to be used as the PostgreSQL password through Warden:
 *
 *   PGPASSWORD="$(warden token --issuer https://idp/realms/h --client-id bot --client-secret env:BOT_SECRET)" psql ...
 *
 * The client secret is only taken by reference (env:NAME or file:PATH), so it
 * never sits in shell history or a process listing; nothing but the token (and
 * with --json its expiry) is printed.
 */
import * as oidc from 'openid-client';
import { resolveSecret, SecretError } from '../../../agent/src/config/secrets.js';

export interface TokenOptions {
  issuer?: string;
  clientId?: string;
  clientSecret?: string;
  audience?: string;
  scope?: string;
  json: boolean;
}

export interface TokenOutput {
  access_token: string;
  token_type: string;
  expires_in?: number;
  /** ISO time the token stops being accepted (from expires_in). */
  expires_at?: string;
  scope?: string;
}

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Plain HTTP only to this machine (a local test or demo issuer): a client secret never crosses a network in clear. */
function isLoopback(url: URL): boolean {
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) || url.hostname.startsWith('127.');
}

/** What the IdP said, without echoing anything secret: OAuth error codes and descriptions are safe to show. */
async function describeFailure(err: unknown): Promise<string> {
  const e = err as { error?: string; error_description?: string; status?: number; message?: string; cause?: { message?: string }; response?: Response };
  // A 401 with a WWW-Authenticate challenge arrives with its body unread: the OAuth error is in there.
  if (!e.error && e.response && !e.response.bodyUsed) {
    const body = (await e.response.json().catch(() => ({}))) as { error?: unknown; error_description?: unknown };
    if (typeof body.error === 'string') e.error = body.error;
    if (typeof body.error_description === 'string') e.error_description = body.error_description;
  }
  if (e.error) return `${e.error}${e.error_description ? `: ${e.error_description}` : ''}${e.status ? ` (HTTP ${e.status})` : ''}`;
  return `${e.message ?? String(err)}${e.cause?.message ? ` (${e.cause.message})` : ''}`;
}

export async function tokenCommand(opts: TokenOptions, io: Io): Promise<number> {
  const usage = (message: string): number => {
    io.stderr.write(`warden token: ${message}\n(see warden --help)\n`);
    return 2;
  };
  if (!opts.issuer) return usage('--issuer is required');
  if (!opts.clientId) return usage('--client-id is required');
  if (!opts.clientSecret) return usage('--client-secret is required (env:NAME or file:PATH)');
  let issuer: URL;
  try {
    issuer = new URL(opts.issuer);
  } catch {
    return usage(`--issuer is not a URL: ${opts.issuer}`);
  }
  if (issuer.protocol !== 'https:' && !(issuer.protocol === 'http:' && isLoopback(issuer))) {
    return usage('--issuer must be https:// (plain http is accepted only for a loopback issuer)');
  }
  let secret: string;
  try {
    secret = resolveSecret(opts.clientSecret);
  } catch (err) {
    if (err instanceof SecretError) return usage(`--client-secret: ${err.message}`);
    throw err;
  }

  let tokens: Awaited<ReturnType<typeof oidc.clientCredentialsGrant>>;
  try {
    const config = await oidc.discovery(issuer, opts.clientId, undefined, oidc.ClientSecretBasic(secret), {
      timeout: 15,
      ...(issuer.protocol === 'http:' ? { execute: [oidc.allowInsecureRequests] } : {}),
    });
    const params: Record<string, string> = {};
    if (opts.scope) params.scope = opts.scope;
    // `audience` is what Auth0, Okta and Entra-style IdPs read; others ignore it.
    if (opts.audience) params.audience = opts.audience;
    tokens = await oidc.clientCredentialsGrant(config, params);
  } catch (err) {
    io.stderr.write(`warden token: the identity provider refused or could not be reached: ${await describeFailure(err)}\n`);
    return 1;
  }
  const expiresIn = tokens.expiresIn();
  if (opts.json) {
    const out: TokenOutput = {
      access_token: tokens.access_token,
      token_type: tokens.token_type,
      ...(expiresIn !== undefined ? { expires_in: expiresIn, expires_at: new Date(Date.now() + expiresIn * 1000).toISOString() } : {}),
      ...(tokens.scope ? { scope: tokens.scope } : {}),
    };
    io.stdout.write(JSON.stringify(out, null, 2) + '\n');
  } else {
    io.stdout.write(tokens.access_token + '\n');
  }
  return 0;
}
