/**
 * Checks binaryToText against the real PostgreSQL: for each expression, the
 * raw binary value the server sends must decode to exactly the text the
 * server sends for the same expression in text format.
 *
 * Text results come from the `pg` client. Binary results come from a tiny
 * wire client below: pg's binary mode decodes every value as a UTF-8 string
 * before handing it over, which corrupts bytes that are not valid UTF-8
 * (most float8 or timestamp values), so it cannot give the raw bytes.
 */
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { services } from '../../../test/support/services.js';
import { binaryToText, binaryToTextBuffer } from './binary.js';

// Session settings that fix the text form: ISO dates, UTC, shortest floats.
const SETTINGS = ["SET DateStyle = 'ISO, MDY'", "SET TimeZone = 'UTC'", 'SET extra_float_digits = 1'];

interface Column {
  oid: number;
  value: Buffer | null;
}

/** Minimal extended-protocol client that keeps binary values as raw bytes. */
class BinaryWire {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.waiter?.();
    });
    socket.on('error', (e) => {
      this.failure = e;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.failure ??= new Error('server closed the connection');
      this.waiter?.();
    });
  }

  static async open(): Promise<BinaryWire> {
    const { host, port, user, database } = services.postgres;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new BinaryWire(socket);
    socket.write(serialize.startup({ user, database }));
    for (;;) {
      const [type, body] = await c.next();
      if (type === 'R' && body.readInt32BE(0) !== 0) throw new Error('test database must use trust auth');
      if (type === 'E') throw new Error(`startup failed: ${body.toString()}`);
      if (type === 'Z') break;
    }
    for (const s of SETTINGS) await c.query(s);
    return c;
  }

  private async next(): Promise<[string, Buffer]> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.buf.length >= 5) {
        const len = this.buf.readInt32BE(1);
        if (this.buf.length >= 1 + len) {
          const type = String.fromCharCode(this.buf[0]!);
          const body = this.buf.subarray(5, 1 + len);
          this.buf = this.buf.subarray(1 + len);
          return [type, body];
        }
      }
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = null;
    }
  }

  /** Runs `sql` with every result column in binary format; returns rows of (type OID, raw value). */
  async query(sql: string): Promise<Column[][]> {
    this.socket.write(
      Buffer.concat([
        serialize.parse({ text: sql }),
        serialize.bind({ binary: true }),
        serialize.describe({ type: 'P' }),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    let oids: number[] = [];
    const rows: Column[][] = [];
    let error: string | null = null;
    for (;;) {
      const [type, body] = await this.next();
      if (type === 'T') {
        oids = [];
        let at = 2;
        for (let i = 0; i < body.readInt16BE(0); i++) {
          at = body.indexOf(0, at) + 1; // column name
          oids.push(body.readInt32BE(at + 6));
          at += 18;
        }
      } else if (type === 'D') {
        const row: Column[] = [];
        let at = 2;
        for (let i = 0; i < body.readInt16BE(0); i++) {
          const len = body.readInt32BE(at);
          at += 4;
          row.push({ oid: oids[i]!, value: len < 0 ? null : Buffer.from(body.subarray(at, at + len)) });
          at += Math.max(len, 0);
        }
        rows.push(row);
      } else if (type === 'E') {
        error = body.toString();
      } else if (type === 'Z') {
        if (error) throw new Error(error);
        return rows;
      }
    }
  }

  close(): void {
    this.socket.end(serialize.end());
  }
}

let wire: BinaryWire;
let client: pg.Client;

beforeAll(async () => {
  wire = await BinaryWire.open();
  client = new pg.Client({ ...services.postgres });
  await client.connect();
  for (const s of SETTINGS) await client.query(s);
});

afterAll(async () => {
  wire?.close();
  await client?.end();
});

/** Compares every column of `select <exprs>` (possibly many rows) in both formats. */
async function compare(sql: string): Promise<number> {
  // Both connections must draw the same random() values.
  await wire.query('select setseed(0.4242)');
  await client.query('select setseed(0.4242)');
  const binary = await wire.query(sql);
  const text = await client.query<string[]>({ text: sql, rowMode: 'array', types: { getTypeParser: () => (v: string) => v } });
  expect(binary.length).toBe(text.rows.length);
  let compared = 0;
  binary.forEach((row, r) =>
    row.forEach((col, c) => {
      const expected = text.rows[r]![c];
      if (col.value === null) {
        expect(expected).toBeNull();
        return;
      }
      const got = binaryToText(col.oid, col.value);
      if (got !== expected) {
        throw new Error(`type ${col.oid} row ${r} col ${c}: decoded ${got} from ${col.value.toString('hex')}, server says ${expected}`);
      }
      expect(binaryToTextBuffer(col.oid, col.value)?.toString('utf8')).toBe(expected);
      compared++;
    }),
  );
  return compared;
}

describe('binaryToText matches PostgreSQL text output', () => {
  it('scalars of every supported type', async () => {
    const n = await compare(`select
      true, false,
      0::int2, (-32768)::int2, 32767::int2,
      0::int4, (-2147483648)::int4, 2147483647::int4,
      (-9223372036854775808)::int8, 9223372036854775807::int8, 42::int8,
      1.5::float4, 0.1::float4, (-3.4028235e38)::float4, 1e-45::float4, 'NaN'::float4, '-Infinity'::float4, '-0'::float4,
      0.1::float8, 1e15::float8, 1e14::float8, 123456789012345678::float8, 0.0001::float8, 0.00001::float8,
      5e-324::float8, 1.7976931348623157e308::float8, 'Infinity'::float8, 'NaN'::float8,
      100000::float4, 1e6::float4, 1234567::float4, 16777216::float4, 0.0001::float4, 0.00001::float4,
      12345.678::numeric, (-0.5)::numeric, 0::numeric, 0.000::numeric, 1e-20::numeric, 10000::numeric,
      123456789012345678901234567890.000000000000000000001::numeric, 'NaN'::numeric, 'Infinity'::numeric,
      '-Infinity'::numeric, round(2::numeric / 3, 40), 0.0001::numeric, 100.10::numeric,
      'Jane Doe'::text, 'Zoë Ångström 李雷 🩺'::varchar, 'ab'::char(5), 'pg_class'::name,
      '2000-01-01'::date, '1957-03-14'::date, '0044-03-15 BC'::date, '4714-11-24 BC'::date,
      '5874897-12-31'::date, 'infinity'::date, '-infinity'::date, '1999-12-31'::date, '2024-02-29'::date,
      '2000-01-01 00:00:00'::timestamp, '1957-03-14 10:22:00.5'::timestamp, '1969-12-31 23:59:59.999999'::timestamp,
      '0001-01-01 00:00:00 BC'::timestamp, '294276-12-31 23:59:59.999999'::timestamp, 'infinity'::timestamp,
      '1957-03-14 10:22:00+00'::timestamptz, '2024-06-30 23:15:01.123+05:30'::timestamptz, '-infinity'::timestamptz,
      '0099-01-01 12:00:00+00 BC'::timestamptz,
      'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid,
      '{"mrn": "AB1234567", "n": [1, 2.50]}'::json, '{"mrn": "AB1234567", "n": [1, 2.50]}'::jsonb,
      null::int4, null::text`);
    expect(n).toBeGreaterThan(70);
  });

  it('random float8 and float4 values', async () => {
    const n = await compare(`select x, x::float4, (x * 1e-15)::float4, x * 1e280, -x * 1e-300
      from (select (case when random() < 0.5 then -1 else 1 end) * (1 + random() * 9) * 10 ^ (random() * 40 - 20) as x
            from generate_series(1, 3000)) s`);
    expect(n).toBe(15000);
  });

  it('random float4 and float8 bit patterns, subnormals included', async () => {
    // Uniform over the bit space, so every exponent range is exercised; each
    // value is sent as an exact 17-digit float8 literal and narrowed by the server.
    const bits = new DataView(new ArrayBuffer(8));
    const literals: string[] = [];
    for (let i = 0; i < 3000; i++) {
      bits.setUint32(0, Math.floor(Math.random() * 2 ** 32));
      bits.setUint32(4, Math.floor(Math.random() * 2 ** 32));
      const single = bits.getFloat32(0);
      const double = bits.getFloat64(0);
      if (!Number.isFinite(single) || !Number.isFinite(double)) continue;
      literals.push(`(${single.toPrecision(17)}::float8::float4, ${double.toPrecision(17)}::float8)`);
    }
    const n = await compare(`select * from (values ${literals.join(',')}) v`);
    expect(n).toBe(literals.length * 2);
  });

  it('powers of two and their neighbours (narrower interval below), integers near 2^24 and 2^53', async () => {
    const lits: string[] = [];
    for (let e = -149; e <= 127; e++) {
      for (const f of [2 ** e, Math.fround(2 ** e * (1 + 2 ** -23)), Math.fround(2 ** e * (1 - 2 ** -24))]) {
        if (f > 0 && Number.isFinite(Math.fround(f))) lits.push(`(${f.toPrecision(17)}::float8::float4, ${f.toPrecision(17)}::float8)`);
      }
    }
    for (let e = -1074; e <= 1023; e += 7) lits.push(`(null::float4, ${(2 ** e).toPrecision(17)}::float8)`);
    for (let d = -3; d <= 3; d++) lits.push(`(${2 ** 24 + d}::float4, ${2 ** 53 + d * 2}::float8)`);
    const n = await compare(`select * from (values ${lits.join(',')}) v`);
    expect(n).toBeGreaterThan(900);
  });

  it('random numerics', async () => {
    const n = await compare(`select round(x::numeric, s), (x * 1e25)::numeric, trunc(-x::numeric, s + 10)
      from (select (random() - 0.5) * 10 ^ (random() * 30 - 15) as x, (random() * 12)::int as s from generate_series(1, 2000)) t`);
    expect(n).toBe(6000);
  });

  it('random dates and timestamps across the whole range, BC included', async () => {
    const n = await compare(`select '4714-11-24 BC'::date + d, '4714-11-24 BC'::timestamp + d * interval '1 day' + us * interval '1 microsecond',
        ('4714-11-24 00:00:00+00 BC'::timestamptz + d * interval '1 day' + us * interval '1 microsecond')
      from (select (random() * 2500000)::int as d, (random() * 86400000000)::int8 as us from generate_series(1, 2000)) t`);
    expect(n).toBe(6000);
  });
});
