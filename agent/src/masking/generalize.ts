/**
 * Generalisers in the spirit of the HIPAA Safe Harbor method (45 CFR
 * 164.514(b)(2)): keep the coarse part of a value that analytics needs and
 * drop the part that identifies a person.
 *
 * Each works on the text form PostgreSQL sends and returns a buffer that is
 * shared between calls (outputs come from a small, bounded set), so callers
 * must treat results as read-only. Anything that does not parse yields the
 * fallback: a value we cannot read is never passed through.
 */

export type GeneralizeAs = 'date' | 'zip' | 'age';

/**
 * Three-digit ZIP prefixes whose combined population was 20,000 or fewer in
 * the 2000 Census, as listed in the HHS "Guidance Regarding Methods for
 * De-identification of PHI" (section 3.3). Safe Harbor requires these to be
 * reported as 000.
 */
export const RESTRICTED_ZIP3: readonly string[] = [
  '036', '059', '063', '102', '203', '556', '692', '790', '821',
  '823', '830', '831', '878', '879', '884', '890', '893',
];

const restrictedZip3 = new Set(RESTRICTED_ZIP3);

/** A Safe Harbor age ceiling: ages of 90 and above are pooled into one group. */
export const AGE_CEILING = 90;

export function compileGeneralizer(as: GeneralizeAs, fallback: Buffer): (value: Buffer) => Buffer {
  switch (as) {
    case 'date':
      return (v) => generalizeDate(v) ?? fallback;
    case 'zip':
      return (v) => generalizeZip(v) ?? fallback;
    case 'age':
      return (v) => generalizeAge(v) ?? fallback;
    default:
      throw new TypeError(`unknown generalization: ${String(as)}`);
  }
}

// ---------------------------------------------------------------- dates

// Upper bound on the text we try to parse; longer values are not a date/timestamp.
const MAX_DATE_TEXT = 64;

const TIME = String.raw`(?:[ T](?:[01]\d|2[0-4]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?)`;
const NUMERIC_ZONE = String.raw`(?:Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)`;
const NAMED_ZONE = String.raw`(?: ?[A-Za-z]{1,6}(?:[+-]\d{1,2})?)`;

// DateStyle ISO (the default, and what binaryToText produces): 1957-03-14 10:22:00+00 BC.
const ISO_DATE = new RegExp(
  String.raw`^(\d{4,})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?:${TIME}${NUMERIC_ZONE}?)?( BC)?$`,
);
// DateStyle SQL (03/14/1957), German (14.03.1957) and the date part of Postgres (03-14-1957).
const DMY_OR_MDY = new RegExp(
  String.raw`^(?:0[1-9]|[12]\d|3[01])[/.-](?:0[1-9]|[12]\d|3[01])[/.-](\d{4,})(?:${TIME}(?:${NUMERIC_ZONE}|${NAMED_ZONE})?)?( BC)?$`,
);
// DateStyle Postgres timestamps: Thu Mar 14 10:22:00 1957 PST.
const POSTGRES_STYLE = new RegExp(
  String.raw`^(?:Sun|Mon|Tue|Wed|Thu|Fri|Sat) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?:0[1-9]|[12]\d|3[01])${TIME}? (\d{4,})(?: ?(?:${NUMERIC_ZONE}|[A-Za-z]{1,6}(?:[+-]\d{1,2})?))?( BC)?$`,
);

const INFINITY = Buffer.from('infinity');
const NEG_INFINITY = Buffer.from('-infinity');

// Years repeat heavily in a result set (birth years), so their outputs are shared.
const yearCache = new Map<string, Buffer>();
const YEAR_CACHE_LIMIT = 25_000;

function yearBuffer(year: string, bc: boolean): Buffer {
  const key = bc ? `${year} BC` : year;
  let b = yearCache.get(key);
  if (b === undefined) {
    b = Buffer.from(key, 'latin1');
    // Years are digits only, so the cache is small in practice; the bound keeps it so.
    if (yearCache.size < YEAR_CACHE_LIMIT) yearCache.set(key, b);
  }
  return b;
}

/**
 * Keeps the year as PostgreSQL wrote it ("0044 BC" stays zero-padded and
 * marked BC, so the order of years is still readable). Other DateStyles are
 * understood as far as their year; anything else is not a date.
 */
export function generalizeDate(v: Buffer): Buffer | undefined {
  if (v.length === 0 || v.length > MAX_DATE_TEXT) return undefined;
  // latin1 maps every byte to one char, and the patterns accept ASCII only,
  // so invalid UTF-8 simply fails to match.
  const s = v.toString('latin1');
  if (s === 'infinity') return INFINITY;
  if (s === '-infinity') return NEG_INFINITY;
  const m = ISO_DATE.exec(s) ?? DMY_OR_MDY.exec(s) ?? POSTGRES_STYLE.exec(s);
  if (m === null) return undefined;
  return yearBuffer(m[1]!, m[2] !== undefined);
}

// ---------------------------------------------------------------- ZIP codes

const zipOutputs = new Map<string, Buffer>();

function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}

function allDigits(v: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isDigit(v[i])) return false;
  return true;
}

/**
 * 5-digit, ZIP+4 (12345-6789) or 9-digit ZIPs, optionally space padded (as
 * char(n) columns are). Output is always five characters: the ZIP3 and `**`,
 * e.g. `021**`, or `000**` for a restricted prefix. The +4 part is dropped.
 */
export function generalizeZip(v: Buffer): Buffer | undefined {
  let start = 0;
  let end = v.length;
  while (start < end && v[start] === 0x20) start++;
  while (end > start && v[end - 1] === 0x20) end--;
  const len = end - start;
  const shapeOk =
    (len === 5 && allDigits(v, start, end)) ||
    (len === 9 && allDigits(v, start, end)) ||
    (len === 10 && v[start + 5] === 0x2d && allDigits(v, start, start + 5) && allDigits(v, start + 6, end));
  if (!shapeOk) return undefined;
  const zip3 = v.toString('latin1', start, start + 3);
  let out = zipOutputs.get(zip3);
  if (out === undefined) {
    out = Buffer.from(`${restrictedZip3.has(zip3) ? '000' : zip3}**`, 'latin1');
    zipOutputs.set(zip3, out); // at most 1000 entries
  }
  return out;
}

// ---------------------------------------------------------------- ages

// The text forms of int2/4/8, numeric and float4/8: 89, 89.5, 1e+02.
const NUMBER = /^\+?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const NINETY_PLUS = Buffer.from('90+');
const MAX_AGE_TEXT = 32;

/**
 * 90 and above become `90+`; lower ages are returned as they are (the same
 * buffer). Negative, non-finite or non-numeric values are not ages.
 */
export function generalizeAge(v: Buffer): Buffer | undefined {
  if (v.length === 0 || v.length > MAX_AGE_TEXT) {
    // A very long run of digits is still a (huge) number; anything else is not.
    return v.length > 0 && allDigits(v, 0, v.length) ? NINETY_PLUS : undefined;
  }
  const s = v.toString('latin1');
  if (!NUMBER.test(s)) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n)) return n === Infinity ? NINETY_PLUS : undefined;
  return n >= AGE_CEILING ? NINETY_PLUS : v;
}
