/**
 * Masking strategies every repository has without declaring them, and the
 * per-use parameters (MaskSpec.params) each strategy kind accepts. Built-ins
 * are written as specs so they get their defaults from the same code path
 * as declared strategies.
 */
import type { MaskingStrategySpec, MaskParamValue } from './types.js';

/**
 * Three-digit ZIP prefixes Safe Harbor requires to be suppressed (areas of
 * 20,000 people or fewer in the 2000 Census; HHS de-identification guidance 3.3).
 */
export const RESTRICTED_ZIP3: readonly string[] = [
  '036', '059', '063', '102', '203', '556', '692', '790', '821',
  '823', '830', '831', '878', '879', '884', '890', '893',
];

/**
 * Detectors the built-in `detect` runs: the ones the agent implements
 * today. ip_address, url and name are valid in declared strategies, but the
 * built-in must never name a detector an agent would refuse.
 */
export const BUILTIN_DETECTORS = ['ssn', 'phone', 'email', 'mrn', 'date'] as const;

/** `hash` is deliberately absent: it needs a key, and a built-in cannot have one. */
export const BUILTIN_STRATEGIES: Readonly<Record<string, MaskingStrategySpec>> = {
  redact: { name: 'redact', description: 'Replaces the whole value with [REDACTED]', redact: { replacement: '[REDACTED]' } },
  null: { name: 'null', description: 'Replaces the value with NULL', nullify: {} },
  partial: { name: 'partial', description: 'Keeps the last 4 characters', partial: { keepPrefix: 0, keepSuffix: 4, maskChar: '*' } },
  'email-domain': { name: 'email-domain', description: 'Keeps the domain of an email address', emailDomain: { localReplacement: '***' } },
  'generalize-date': { name: 'generalize-date', description: 'Keeps the year (Safe Harbor)', generalize: { date: { precision: 'year' } } },
  'generalize-zip': {
    name: 'generalize-zip',
    description: 'Keeps the ZIP3 and suppresses restricted ZIP3 areas (Safe Harbor)',
    generalize: { prefix: { keepChars: 3, fillChar: '*', suppressedPrefixes: [...RESTRICTED_ZIP3] } },
  },
  'generalize-age': {
    name: 'generalize-age',
    description: 'Pools ages of 90 and above (Safe Harbor)',
    generalize: { number: { bucketSize: 1, ceiling: 90 } },
  },
  detect: {
    name: 'detect',
    description: 'Replaces identifiers found in free text, each with its detector placeholder',
    detect: { detectors: [...BUILTIN_DETECTORS] },
  },
};

export function isBuiltinStrategy(name: string): boolean {
  return Object.hasOwn(BUILTIN_STRATEGIES, name);
}

type ParamType = 'uint' | 'string' | 'char';

/** Parameter names are the proto field names of the strategy's settings. */
export function paramTypes(s: MaskingStrategySpec): Record<string, ParamType> {
  if (s.redact) return { replacement: 'string' };
  if (s.partial) return { keep_prefix: 'uint', keep_suffix: 'uint', mask_char: 'char' };
  if (s.hash) return { output_chars: 'uint', prefix: 'string' };
  if (s.emailDomain) return { local_replacement: 'string' };
  if (s.detect) return { replacement: 'string' };
  // generalize settings live in a nested method; declare another strategy instead of overriding them per use.
  return {};
}

/** YAML authors write camelCase like everywhere else; the bundle carries proto names. */
export function toSnake(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Checks a MaskSpec.params value; returns the string form the bundle carries, or a reason. */
export function checkParam(type: ParamType, value: MaskParamValue): { value: string } | { error: string } {
  const text = String(value);
  const num = typeof value === 'number' ? value : /^\d+$/.test(text) ? Number(text) : NaN;
  switch (type) {
    case 'uint':
      if (!Number.isInteger(num) || num < 0 || num > 1024) return { error: 'must be an integer from 0 to 1024' };
      return { value: String(num) };
    case 'char':
      if (typeof value !== 'string' || [...value].length !== 1) return { error: 'must be a single character' };
      return { value };
    case 'string':
      if (typeof value !== 'string') return { error: 'must be a string' };
      return { value };
  }
}
