/**
 * The one error type login refusals use. The engine turns it into a
 * PostgreSQL ErrorResponse, so the message reaches the caller verbatim: it
 * must tell them what to do next and must never carry the token or any key.
 */

/**
 * 28P01 invalid_password: the token itself is not acceptable (forged, expired,
 * wrong audience, unverifiable). 28000 invalid_authorization_specification: the
 * token is genuine but its identity has no access here.
 */
export type AuthSqlState = '28P01' | '28000';

export type AuthReason =
  | 'malformed'
  | 'missing_claim'
  | 'expired'
  | 'not_yet_valid'
  | 'bad_signature'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'alg_not_allowed'
  | 'unknown_key'
  | 'idp_unreachable'
  | 'idp_misconfigured'
  | 'no_role'
  | 'ambiguous_role';

export class AuthError extends Error {
  override readonly name = 'AuthError';
  readonly sqlState: AuthSqlState;
  /** Stable code for audit records and metrics; the message is for humans. */
  readonly reason: AuthReason;

  constructor(message: string, sqlState: AuthSqlState, reason: AuthReason, options?: { cause?: unknown }) {
    super(message, options);
    this.sqlState = sqlState;
    this.reason = reason;
  }
}

/**
 * Token claims are attacker-controlled and end up in messages and logs: quote
 * them, strip control characters and bound their length.
 */
export function quote(value: unknown, max = 120): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return JSON.stringify(clean.length > max ? `${clean.slice(0, max)}…` : clean);
}

/** A bounded, quoted list for messages: tokens may carry hundreds of groups. */
export function quoteList(values: readonly unknown[], maxItems = 20): string {
  const shown = values.slice(0, maxItems).map((v) => quote(v));
  const more = values.length > maxItems ? `, and ${values.length - maxItems} more` : '';
  return `[${shown.join(', ')}${more}]`;
}
