/**
 * The agent's structured logger. Tokens, passwords and statement values are
 * never passed to it; the redact list is a second line of defence for
 * fields that might carry them by mistake.
 */
import { pino, type Logger } from 'pino';

export function createLogger(level = process.env.WARDEN_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name: 'warden-agent',
    level,
    redact: { paths: ['token', 'password', '*.token', '*.password', 'authorization', '*.authorization'], censor: '[redacted]' },
  });
}
