/**
 * The structured logger of every Warden process (agent, control plane).
 * Tokens, passwords and statement values are never passed to it; the redact
 * list is a second line of defence for fields that might carry them by
 * mistake (a token in an error object, an Authorization header in a request).
 */
import { pino, type DestinationStream, type Logger } from 'pino';

const SECRET_FIELDS = ['token', 'accessToken', 'access_token', 'idToken', 'id_token', 'enrollmentToken', 'password', 'secret', 'clientSecret', 'client_secret', 'authorization', 'cookie'];

/** Field paths whose values are replaced by "[redacted]" in every log line. */
export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-hub-signature-256"]',
  'req.headers["x-gitlab-token"]',
  'headers.authorization',
];

export function createLogger(level = process.env.WARDEN_LOG_LEVEL ?? 'info', opts: { name?: string; destination?: DestinationStream } = {}): Logger {
  const options = { name: opts.name ?? 'warden-agent', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
