import { describe, expect, it } from 'vitest';
import { binaryToText, binaryToTextBuffer, isBinaryDecodable, MASKED_COLUMN_TYPE_OID, TYPE_OID as T } from './binary.js';
import { compileMasker } from './strategies.js';

// Builders for the PostgreSQL binary wire format, written from the protocol
// documentation rather than from the decoder.
const i16 = (...ns: number[]): Buffer => {
  const out = Buffer.alloc(2 * ns.length);
  ns.forEach((n, i) => out.writeUInt16BE(n & 0xffff, 2 * i));
  return out;
};
const i32 = (n: number): Buffer => {
  const out = Buffer.alloc(4);
  out.writeInt32BE(n);
  return out;
};
const i64 = (n: bigint): Buffer => {
  const out = Buffer.alloc(8);
  out.writeBigInt64BE(n);
  return out;
};
const f32 = (n: number): Buffer => {
  const out = Buffer.alloc(4);
  out.writeFloatBE(n);
  return out;
};
const f64 = (n: number): Buffer => {
  const out = Buffer.alloc(8);
  out.writeDoubleBE(n);
  return out;
};
/** numeric: ndigits, weight, sign, dscale, then base-10000 digits. */
const numeric = (weight: number, sign: number, dscale: number, digits: number[]): Buffer =>
  Buffer.concat([i16(digits.length, weight, sign, dscale), i16(...digits)]);

const MS_PER_DAY = 86_400_000;
const EPOCH_2000 = Date.UTC(2000, 0, 1);
/** Astronomical year (0 = 1 BC) so BC dates can be built with JS dates as an independent oracle. */
const utc = (year: number, month: number, day: number, h = 0, mi = 0, s = 0, ms = 0): number => {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(h, mi, s, ms);
  return d.getTime();
};
const daysSince2000 = (ms: number): number => Math.round((ms - EPOCH_2000) / MS_PER_DAY);
const usSince2000 = (ms: number, extraUs = 0n): bigint => BigInt(ms - EPOCH_2000) * 1000n + extraUs;

describe('binaryToText: scalars', () => {
  it('bool and integers', () => {
    expect(binaryToText(T.bool, Buffer.from([1]))).toBe('t');
    expect(binaryToText(T.bool, Buffer.from([0]))).toBe('f');
    expect(binaryToText(T.int2, i16(-2))).toBe('-2');
    expect(binaryToText(T.int2, i16(32767))).toBe('32767');
    expect(binaryToText(T.int4, i32(-2147483648))).toBe('-2147483648');
    expect(binaryToText(T.int4, i32(89))).toBe('89');
    expect(binaryToText(T.int8, i64(9223372036854775807n))).toBe('9223372036854775807');
    expect(binaryToText(T.int8, i64(-9223372036854775808n))).toBe('-9223372036854775808');
  });

  it('floats, in PostgreSQL shortest-exact notation', () => {
    expect(binaryToText(T.float4, f32(1.5))).toBe('1.5');
    expect(binaryToText(T.float4, f32(0.1))).toBe('0.1');
    expect(binaryToText(T.float4, f32(1234567))).toBe('1.234567e+06');
    expect(binaryToText(T.float4, f32(100000))).toBe('100000');
    expect(binaryToText(T.float8, f64(0.1))).toBe('0.1');
    expect(binaryToText(T.float8, f64(1e15))).toBe('1e+15');
    expect(binaryToText(T.float8, f64(1e14))).toBe('100000000000000');
    expect(binaryToText(T.float8, f64(0.00001))).toBe('1e-05');
    expect(binaryToText(T.float8, f64(0.0001))).toBe('0.0001');
    expect(binaryToText(T.float8, f64(5e-324))).toBe('5e-324');
    expect(binaryToText(T.float8, f64(-0))).toBe('-0');
    expect(binaryToText(T.float8, f64(NaN))).toBe('NaN');
    expect(binaryToText(T.float8, f64(-Infinity))).toBe('-Infinity');
  });

  it('numeric 12345.678, -0.5 and friends', () => {
    expect(binaryToText(T.numeric, numeric(1, 0x0000, 3, [1, 2345, 6780]))).toBe('12345.678');
    expect(binaryToText(T.numeric, numeric(-1, 0x4000, 1, [5000]))).toBe('-0.5');
    expect(binaryToText(T.numeric, numeric(0, 0x0000, 0, []))).toBe('0');
    expect(binaryToText(T.numeric, numeric(0, 0x0000, 2, []))).toBe('0.00');
    expect(binaryToText(T.numeric, numeric(1, 0x0000, 0, [1]))).toBe('10000');
    expect(binaryToText(T.numeric, numeric(-2, 0x0000, 8, [12]))).toBe('0.00000012');
    expect(binaryToText(T.numeric, numeric(0, 0x0000, 2, [100, 1000]))).toBe('100.10');
    expect(binaryToText(T.numeric, numeric(0, 0xc000, 0, []))).toBe('NaN');
    expect(binaryToText(T.numeric, numeric(0, 0xd000, 0, []))).toBe('Infinity');
    expect(binaryToText(T.numeric, numeric(0, 0xf000, 0, []))).toBe('-Infinity');
  });

  it('string types and json are their UTF-8 bytes; jsonb has a version byte', () => {
    const s = 'Zoë Ångström 李雷 🩺';
    for (const oid of [T.text, T.varchar, T.bpchar, T.name, T.json]) expect(binaryToText(oid, Buffer.from(s))).toBe(s);
    expect(binaryToText(T.jsonb, Buffer.concat([Buffer.from([1]), Buffer.from('{"mrn": "AB1234567"}')]))).toBe('{"mrn": "AB1234567"}');
    expect(binaryToText(T.text, Buffer.alloc(0))).toBe('');
  });

  it('uuid', () => {
    const v = Buffer.from('a0eebc999c0b4ef8bb6d6bb9bd380a11', 'hex');
    expect(binaryToText(T.uuid, v)).toBe('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  });
});

describe('binaryToText: dates and timestamps', () => {
  it('date is days since 2000-01-01', () => {
    expect(binaryToText(T.date, i32(0))).toBe('2000-01-01');
    expect(binaryToText(T.date, i32(-1))).toBe('1999-12-31');
    expect(binaryToText(T.date, i32(daysSince2000(utc(1957, 3, 14))))).toBe('1957-03-14');
    expect(binaryToText(T.date, i32(daysSince2000(utc(2024, 2, 29))))).toBe('2024-02-29');
    expect(binaryToText(T.date, i32(daysSince2000(utc(-43, 3, 15))))).toBe('0044-03-15 BC');
    expect(binaryToText(T.date, i32(daysSince2000(utc(0, 12, 31))))).toBe('0001-12-31 BC');
    expect(binaryToText(T.date, i32(daysSince2000(utc(1, 1, 1))))).toBe('0001-01-01');
    expect(binaryToText(T.date, i32(0x7fffffff))).toBe('infinity');
    expect(binaryToText(T.date, i32(-0x80000000))).toBe('-infinity');
  });

  it('timestamp is microseconds since 2000-01-01 00:00:00', () => {
    expect(binaryToText(T.timestamp, i64(0n))).toBe('2000-01-01 00:00:00');
    expect(binaryToText(T.timestamp, i64(-1n))).toBe('1999-12-31 23:59:59.999999');
    expect(binaryToText(T.timestamp, i64(usSince2000(utc(1957, 3, 14, 10, 22))))).toBe('1957-03-14 10:22:00');
    expect(binaryToText(T.timestamp, i64(usSince2000(utc(1957, 3, 14, 10, 22, 0, 500))))).toBe('1957-03-14 10:22:00.5');
    expect(binaryToText(T.timestamp, i64(usSince2000(utc(2024, 6, 30, 23, 15, 1), 123n)))).toBe('2024-06-30 23:15:01.000123');
    expect(binaryToText(T.timestamp, i64(usSince2000(utc(-43, 3, 15, 12))))).toBe('0044-03-15 12:00:00 BC');
    expect(binaryToText(T.timestamp, i64(0x7fffffffffffffffn))).toBe('infinity');
    expect(binaryToText(T.timestamp, i64(-0x8000000000000000n))).toBe('-infinity');
  });

  it('timestamptz is rendered in UTC with +00, BC after the zone', () => {
    expect(binaryToText(T.timestamptz, i64(0n))).toBe('2000-01-01 00:00:00+00');
    expect(binaryToText(T.timestamptz, i64(usSince2000(utc(1957, 3, 14, 10, 22))))).toBe('1957-03-14 10:22:00+00');
    expect(binaryToText(T.timestamptz, i64(usSince2000(utc(-98, 1, 1, 12))))).toBe('0099-01-01 12:00:00+00 BC');
  });

  it('out-of-range values PostgreSQL never sends are not decoded', () => {
    expect(binaryToText(T.date, i32(2147483494 - 2451545))).toBeUndefined();
    expect(binaryToText(T.date, i32(-2451546))).toBeUndefined();
    expect(binaryToText(T.timestamp, i64(9223371331200000000n))).toBeUndefined();
    expect(binaryToText(T.timestamp, i64(-211813488000000001n))).toBeUndefined();
  });
});

describe('binaryToText: failing closed', () => {
  it('unknown types decode to undefined', () => {
    expect(binaryToText(T.bytea, Buffer.from('x'))).toBeUndefined();
    expect(binaryToText(1186 /* interval */, Buffer.alloc(16))).toBeUndefined();
    expect(binaryToText(999_999, Buffer.alloc(4))).toBeUndefined();
    expect(isBinaryDecodable(T.int4)).toBe(true);
    expect(isBinaryDecodable(T.bytea)).toBe(false);
  });

  it('malformed values decode to undefined instead of throwing', () => {
    expect(binaryToText(T.int4, Buffer.alloc(3))).toBeUndefined();
    expect(binaryToText(T.int8, Buffer.alloc(4))).toBeUndefined();
    expect(binaryToText(T.bool, Buffer.from([2]))).toBeUndefined();
    expect(binaryToText(T.uuid, Buffer.alloc(15))).toBeUndefined();
    expect(binaryToText(T.numeric, Buffer.alloc(7))).toBeUndefined();
    expect(binaryToText(T.numeric, numeric(0, 0, 0, [1]).subarray(0, 9))).toBeUndefined();
    expect(binaryToText(T.numeric, numeric(0, 0, 0, [10000]))).toBeUndefined();
    expect(binaryToText(T.numeric, numeric(0, 0x1234, 0, [1]))).toBeUndefined();
    expect(binaryToText(T.jsonb, Buffer.from('{}'))).toBeUndefined();
    expect(binaryToText(T.jsonb, Buffer.alloc(0))).toBeUndefined();
    expect(binaryToText(T.text, Buffer.from([0x41, 0xff]))).toBeUndefined();
  });
});

describe('binaryToTextBuffer', () => {
  it('hands string types through without a copy', () => {
    const v = Buffer.from('Jane Doe');
    expect(binaryToTextBuffer(T.text, v)).toBe(v);
    expect(binaryToTextBuffer(T.jsonb, Buffer.from('\u0001[1]'))?.toString()).toBe('[1]');
    expect(binaryToTextBuffer(T.varchar, Buffer.from([0xc0]))).toBeUndefined();
  });

  it('feeds maskers the same text a text-format client would have produced', () => {
    const dob = binaryToTextBuffer(T.date, i32(daysSince2000(utc(1957, 3, 14))))!;
    expect(compileMasker({ kind: 'generalize', as: 'date' })(dob)?.toString()).toBe('1957');
    const key = Buffer.alloc(32, 0x5a);
    const hash = compileMasker({ kind: 'hash', key });
    expect(hash(binaryToTextBuffer(T.int4, i32(482913))!)).toEqual(hash(Buffer.from('482913')));
    expect(hash(binaryToTextBuffer(T.float8, f64(98.6))!)).toEqual(hash(Buffer.from('98.6')));
    expect(binaryToTextBuffer(T.bytea, Buffer.from('x'))).toBeUndefined();
    expect(MASKED_COLUMN_TYPE_OID).toBe(25);
  });
});
