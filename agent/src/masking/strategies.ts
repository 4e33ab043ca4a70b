/**
 * Masking strategies for PHI columns, compiled once per policy into plain
 * closures that the relay calls for every value of a masked column.
 *
 * Contract of a Masker, relied upon by the data path:
 *  - input is the column value as PostgreSQL sends it in text format (UTF-8
 *    bytes); SQL NULL never reaches a masker (see maskValue);
 *  - it never throws, whatever the bytes;
 *  - it never returns the input for a value it cannot interpret: it fails
 *    closed to the redaction token;
 *  - the returned buffer may be shared between calls (a constant token, a
 *    cached year) or be the input itself where the strategy says the value
 *    is safe as it is, so it must be treated as read-only.
 *
 * compileMasker validates the strategy and throws on a bad one: that happens
 * when a policy is loaded, not while rows flow.
 */
import { isUtf8 } from 'node:buffer';
import { createHmac } from 'node:crypto';
import { compileDetectors, type DetectorName, type DetectorOptions } from './detectors.js';
import { compileGeneralizer, type GeneralizeAs } from './generalize.js';

export type Masker = (value: Buffer) => Buffer | null;

export type MaskStrategy =
  | { kind: 'redact'; token?: string }
  | { kind: 'null' }
  | { kind: 'partial'; keep: number; fill?: string }
  | { kind: 'hash'; key: Buffer; prefix?: string }
  | { kind: 'generalize'; as: GeneralizeAs }
  | { kind: 'email-domain' }
  | {
      kind: 'detect';
      detectors?: DetectorName[];
      replacement?: string | Partial<Record<DetectorName, string>>;
      mrnPattern?: RegExp | string;
    };

export type MaskKind = MaskStrategy['kind'];

export const DEFAULT_REDACTION = '[REDACTED]';
export const DEFAULT_HASH_PREFIX = 'tok_';
/**
 * 24 hex digits = 96 bits of the HMAC. Tokens must not collide, or joins and
 * counts on them would merge different people: with 96 bits, even 10^9
 * distinct values collide with probability about 10^18 / 2^97 ≈ 6·10^-12,
 * while the token stays short enough to read in a result set.
 */
export const HASH_HEX_DIGITS = 24;
/** HMAC keys shorter than this are refused: a guessable key lets anyone re-identify by hashing candidates. */
export const MIN_HASH_KEY_BYTES = 16;

const REDACTED = Buffer.from(DEFAULT_REDACTION);
const EMPTY = Buffer.alloc(0);

export function compileMasker(strategy: MaskStrategy): Masker {
  if (strategy === null || typeof strategy !== 'object') throw new TypeError('mask strategy must be an object');
  switch (strategy.kind) {
    case 'redact': {
      const token = strategy.token ?? DEFAULT_REDACTION;
      if (typeof token !== 'string') throw new TypeError('redact.token must be a string');
      const out = token === DEFAULT_REDACTION ? REDACTED : Buffer.from(token, 'utf8');
      return () => out;
    }
    case 'null':
      return () => null;
    case 'partial':
      return compilePartial(strategy.keep, strategy.fill ?? '*');
    case 'hash':
      return compileHash(strategy.key, strategy.prefix ?? DEFAULT_HASH_PREFIX);
    case 'generalize':
      return compileGeneralizer(strategy.as, REDACTED);
    case 'email-domain':
      return emailDomain;
    case 'detect': {
      const options: DetectorOptions = {};
      if (strategy.detectors !== undefined) options.detectors = strategy.detectors;
      if (strategy.replacement !== undefined) options.replacement = strategy.replacement;
      if (strategy.mrnPattern !== undefined) options.mrnPattern = strategy.mrnPattern;
      const detector = compileDetectors(options);
      return (v) => detector.maskBuffer(v) ?? REDACTED;
    }
    default:
      throw new TypeError(`unknown mask strategy: ${String((strategy as { kind?: unknown }).kind)}`);
  }
}

/** Applies a masker to a DataRow value; NULL stays NULL (it carries no value to protect). */
export function maskValue(masker: Masker, value: Buffer | null): Buffer | null {
  return value === null ? null : masker(value);
}

// ---------------------------------------------------------------- partial

function isContinuation(b: number): boolean {
  return (b & 0xc0) === 0x80;
}

/**
 * Keeps the last `keep` characters (Unicode code points, so a multi-byte
 * character is kept or masked whole) and writes one `fill` per masked
 * character. Works on the bytes: no string is decoded.
 */
function compilePartial(keep: number, fill: string): Masker {
  if (!Number.isInteger(keep) || keep < 0) throw new TypeError('partial.keep must be a non-negative integer');
  if (typeof fill !== 'string' || fill.length === 0) throw new TypeError('partial.fill must be a non-empty string');
  const fillBytes = Buffer.from(fill, 'utf8');
  const fillLen = fillBytes.length;
  return (v) => {
    if (v.length === 0) return EMPTY;
    // Counting characters in invalid UTF-8 is guesswork, and guessing wrong could reveal more than `keep`.
    if (!isUtf8(v)) return REDACTED;
    let tail = v.length;
    let kept = 0;
    while (tail > 0 && kept < keep) {
      tail--;
      while (tail > 0 && isContinuation(v[tail]!)) tail--;
      kept++;
    }
    let masked: number;
    if (tail === 0) {
      // The whole value fits in `keep`: showing it would reveal a short value entirely.
      masked = kept;
      tail = v.length;
    } else {
      masked = 0;
      for (let i = 0; i < tail; i++) if (!isContinuation(v[i]!)) masked++;
    }
    const head = masked * fillLen;
    const out = Buffer.allocUnsafe(head + v.length - tail);
    if (head > 0) out.fill(fillBytes, 0, head);
    v.copy(out, head, tail);
    return out;
  };
}

// ---------------------------------------------------------------- hash

const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * Keyed HMAC-SHA-256 pseudonym: the same value under the same key always
 * gives the same token (joins, GROUP BY and COUNT DISTINCT still work), a
 * different key gives unrelated tokens (no linking across deployments), and
 * without the key nobody can confirm a guessed value by hashing it.
 */
function compileHash(key: Buffer, prefix: string): Masker {
  if (!Buffer.isBuffer(key)) throw new TypeError('hash.key must be a Buffer');
  if (key.length < MIN_HASH_KEY_BYTES) throw new TypeError(`hash.key must be at least ${MIN_HASH_KEY_BYTES} bytes`);
  if (typeof prefix !== 'string') throw new TypeError('hash.prefix must be a string');
  // A private copy: later changes to the caller's buffer must not change tokens.
  // (A raw key measured faster per call than a KeyObject or a hand-rolled HMAC.)
  const secret = Buffer.from(key);
  const prefixBytes = Buffer.from(prefix, 'utf8');
  const p = prefixBytes.length;
  return (v) => {
    const digest = createHmac('sha256', secret).update(v).digest();
    const out = Buffer.allocUnsafe(p + HASH_HEX_DIGITS);
    prefixBytes.copy(out, 0);
    for (let i = 0; i < HASH_HEX_DIGITS / 2; i++) {
      const b = digest[i]!;
      out[p + 2 * i] = HEX[b >> 4]!;
      out[p + 2 * i + 1] = HEX[b & 0x0f]!;
    }
    return out;
  };
}

// ---------------------------------------------------------------- email-domain

const LOCAL_PART = /^[^\s@"<>()[\]\\,;:]{1,64}$/u;
// Hostname labels (IDN allowed); no IP literals: an address is an identifier in its own right.
const DOMAIN = /^(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]{0,61}[\p{L}\p{N}])?\.)+\p{L}[\p{L}\p{N}-]{0,62}$/u;
const MAX_EMAIL_BYTES = 320;

/** `jane.doe@example.org` → `***@example.org`. The domain is lower-cased so equal domains group together. */
function emailDomain(v: Buffer): Buffer {
  if (v.length === 0 || v.length > MAX_EMAIL_BYTES || !isUtf8(v)) return REDACTED;
  const s = v.toString('utf8').trim();
  const at = s.lastIndexOf('@');
  if (at <= 0) return REDACTED;
  const domain = s.slice(at + 1);
  if (!LOCAL_PART.test(s.slice(0, at)) || domain.length > 253 || !DOMAIN.test(domain)) return REDACTED;
  return Buffer.from(`***@${domain.toLowerCase()}`, 'utf8');
}
