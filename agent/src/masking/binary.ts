/**
 * Decoding of PostgreSQL binary-format column values into their text form.
 *
 * A client may ask (in Bind) for results in binary format. Maskers work on
 * the text form, so a binary value of a masked column is first turned into
 * the exact text PostgreSQL would have sent, then masked.
 *
 * Why the masked value can then be sent back whatever format the client
 * asked for: a masked column is re-described to the client as `text`
 * (OID 25) in RowDescription, because "[REDACTED]" or "tok_…" is not an
 * int4 or a date. The binary representation of `text` is simply its UTF-8
 * bytes, identical to its text representation, so the masker's output is a
 * valid value in both formats and needs no re-encoding.
 *
 * A type not listed here decodes to undefined; the caller must then fail
 * closed (redact), never forward the original bytes.
 */
import { isUtf8 } from 'node:buffer';
import { float4Text, float8Text } from './float-text.js';

/** The type a masked column is announced as, in either format. */
export const MASKED_COLUMN_TYPE_OID = 25;

export const TYPE_OID = {
  bool: 16,
  bytea: 17,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

const O = TYPE_OID;

const DECODABLE = new Set<number>([
  O.bool, O.int2, O.int4, O.int8, O.float4, O.float8, O.numeric, O.text, O.varchar, O.bpchar, O.name,
  O.date, O.timestamp, O.timestamptz, O.uuid, O.json, O.jsonb,
]);

export function isBinaryDecodable(typeOid: number): boolean {
  return DECODABLE.has(typeOid);
}

/**
 * The text PostgreSQL would send for this binary value (DateStyle ISO,
 * timestamptz in UTC rendered with "+00", shortest-exact floats as with the
 * default extra_float_digits = 1), or undefined for an unknown type or
 * malformed bytes.
 */
export function binaryToText(typeOid: number, value: Buffer): string | undefined {
  try {
    return decode(typeOid, value);
  } catch {
    // Out-of-range reads on a malformed value: not decodable, never fatal.
    return undefined;
  }
}

/**
 * Same as binaryToText but as bytes, for the masking path: string types,
 * whose binary form already is their text, are returned without a copy.
 */
export function binaryToTextBuffer(typeOid: number, value: Buffer): Buffer | undefined {
  switch (typeOid) {
    case O.text:
    case O.varchar:
    case O.bpchar:
    case O.name:
    case O.json:
      return isUtf8(value) ? value : undefined;
    case O.jsonb: {
      if (value.length < 1 || value[0] !== 1) return undefined;
      const body = value.subarray(1);
      return isUtf8(body) ? body : undefined;
    }
    default: {
      const s = binaryToText(typeOid, value);
      return s === undefined ? undefined : Buffer.from(s, 'latin1');
    }
  }
}

function decode(oid: number, v: Buffer): string | undefined {
  switch (oid) {
    case O.bool:
      return v.length === 1 && v[0]! <= 1 ? (v[0] === 1 ? 't' : 'f') : undefined;
    case O.int2:
      return v.length === 2 ? String(v.readInt16BE(0)) : undefined;
    case O.int4:
      return v.length === 4 ? String(v.readInt32BE(0)) : undefined;
    case O.int8:
      return v.length === 8 ? v.readBigInt64BE(0).toString() : undefined;
    case O.float4:
      return v.length === 4 ? float4Text(v.readFloatBE(0)) : undefined;
    case O.float8:
      return v.length === 8 ? float8Text(v.readDoubleBE(0)) : undefined;
    case O.numeric:
      return numericText(v);
    case O.text:
    case O.varchar:
    case O.bpchar:
    case O.name:
    case O.json:
      return isUtf8(v) ? v.toString('utf8') : undefined;
    case O.jsonb:
      return v.length >= 1 && v[0] === 1 && isUtf8(v.subarray(1)) ? v.toString('utf8', 1) : undefined;
    case O.date:
      return v.length === 4 ? dateText(v.readInt32BE(0)) : undefined;
    case O.timestamp:
      return v.length === 8 ? timestampText(v.readBigInt64BE(0), false) : undefined;
    case O.timestamptz:
      return v.length === 8 ? timestampText(v.readBigInt64BE(0), true) : undefined;
    case O.uuid:
      return v.length === 16 ? uuidText(v) : undefined;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------- numeric

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;
const NUMERIC_DSCALE_MAX = 0x3fff;
const NBASE = 10000;

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/**
 * Wire layout: int16 ndigits, int16 weight (of the first base-10000 digit),
 * uint16 sign, int16 dscale (decimal digits after the point), then ndigits
 * base-10000 digits. Printed as PostgreSQL's get_str_from_var does.
 */
function numericText(v: Buffer): string | undefined {
  if (v.length < 8) return undefined;
  const ndigits = v.readUInt16BE(0);
  const weight = v.readInt16BE(2);
  const sign = v.readUInt16BE(4);
  const dscale = v.readUInt16BE(6);
  if (v.length !== 8 + 2 * ndigits) return undefined;
  if (sign === NUMERIC_NAN) return 'NaN';
  if (sign === NUMERIC_PINF) return 'Infinity';
  if (sign === NUMERIC_NINF) return '-Infinity';
  if ((sign !== NUMERIC_POS && sign !== NUMERIC_NEG) || dscale > NUMERIC_DSCALE_MAX) return undefined;
  const digit = (i: number): number => (i >= 0 && i < ndigits ? v.readUInt16BE(8 + 2 * i) : 0);
  for (let i = 0; i < ndigits; i++) if (digit(i) >= NBASE) return undefined;

  let out = sign === NUMERIC_NEG ? '-' : '';
  if (weight < 0) out += '0';
  else for (let d = 0; d <= weight; d++) out += d === 0 ? String(digit(d)) : pad(digit(d), 4);
  if (dscale > 0) {
    let frac = '';
    for (let d = weight + 1; frac.length < dscale; d++) frac += pad(digit(d), 4);
    out += '.' + frac.slice(0, dscale);
  }
  return out;
}

// ---------------------------------------------------------------- date/time

const POSTGRES_EPOCH_JDATE = 2451545; // 2000-01-01
const DATE_END_JULIAN = 2147483494; // 5874898-01-01, first date PostgreSQL rejects
const DATE_NOBEGIN = -0x80000000;
const DATE_NOEND = 0x7fffffff;
const USECS_PER_DAY = 86_400_000_000n;
const MIN_TIMESTAMP = -211813488000000000n; // 4714-11-24 00:00:00 BC
const END_TIMESTAMP = 9223371331200000000n; // 294277-01-01 00:00:00
const DT_NOBEGIN = -0x8000000000000000n;
const DT_NOEND = 0x7fffffffffffffffn;

/** Julian day number to proleptic Gregorian date; PostgreSQL's j2date, in exact integer arithmetic. */
function j2date(jd: number): [year: number, month: number, day: number] {
  let julian = jd + 32044;
  let quad = Math.floor(julian / 146097);
  const extra = (julian - quad * 146097) * 4 + 3;
  julian += 60 + quad * 3 + Math.floor(extra / 146097);
  quad = Math.floor(julian / 1461);
  julian -= quad * 1461;
  let y = Math.floor((julian * 4) / 1461);
  julian = (y !== 0 ? (julian + 305) % 365 : (julian + 306) % 366) + 123;
  y += quad * 4;
  quad = Math.floor((julian * 2141) / 65536);
  return [y - 4800, ((quad + 10) % 12) + 1, julian - Math.floor((7834 * quad) / 256)];
}

/** ISO date, with year 0 and before shown as PostgreSQL does: 1 BC, 2 BC, … */
function isoDate(jd: number): [text: string, bc: boolean] {
  const [y, m, d] = j2date(jd);
  const bc = y <= 0;
  return [`${pad(bc ? 1 - y : y, 4)}-${pad(m, 2)}-${pad(d, 2)}`, bc];
}

function dateText(days: number): string | undefined {
  if (days === DATE_NOBEGIN) return '-infinity';
  if (days === DATE_NOEND) return 'infinity';
  const jd = days + POSTGRES_EPOCH_JDATE;
  if (jd < 0 || jd >= DATE_END_JULIAN) return undefined;
  const [text, bc] = isoDate(jd);
  return bc ? `${text} BC` : text;
}

/** Microseconds since 2000-01-01 00:00:00 (UTC for timestamptz). */
function timestampText(us: bigint, withZone: boolean): string | undefined {
  if (us === DT_NOBEGIN) return '-infinity';
  if (us === DT_NOEND) return 'infinity';
  if (us < MIN_TIMESTAMP || us >= END_TIMESTAMP) return undefined;
  let days = us / USECS_PER_DAY;
  let rest = us % USECS_PER_DAY;
  if (rest < 0n) {
    rest += USECS_PER_DAY;
    days -= 1n;
  }
  const [date, bc] = isoDate(Number(days) + POSTGRES_EPOCH_JDATE);
  const t = Number(rest); // < 8.64e10, exact
  const fsec = t % 1_000_000;
  const secs = (t - fsec) / 1_000_000;
  const hh = Math.floor(secs / 3600);
  const mm = Math.floor((secs % 3600) / 60);
  const ss = secs % 60;
  let text = `${date} ${pad(hh, 2)}:${pad(mm, 2)}:${pad(ss, 2)}`;
  if (fsec !== 0) text += '.' + pad(fsec, 6).replace(/0+$/, '');
  if (withZone) text += '+00';
  return bc ? `${text} BC` : text;
}

// ---------------------------------------------------------------- uuid

function uuidText(v: Buffer): string {
  const h = v.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
