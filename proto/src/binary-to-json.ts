/**
 * Proto3 JSON straight from a message's binary encoding, without building
 * the message first. The control plane turns every audit event it receives
 * into its stored JSON record; through protobuf-es that is a reflective
 * decode (fromBinary), a reflective encode (toJson) and JSON.stringify —
 * about 30 µs and two object graphs per event, the largest cost on the audit
 * path. This walks the bytes once and writes the JSON text as it goes.
 *
 * It reads the canonical encoding every protobuf writer produces: fields in
 * increasing number order, each repeated field's elements together. Anything
 * else — a field out of order or repeated where it may appear once, two
 * members of one oneof, map fields, groups, well-known types other than
 * Timestamp and Empty, a value toJson would refuse — is handed to protobuf-es
 * (fromBinary + toJson), which stays the reference for what the JSON is and
 * for which bytes are refused.
 */
import { fromBinary, toJson, ScalarType, type DescEnum, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { isUtf8 } from 'node:buffer';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** The encoding is not the canonical one this reader handles: let protobuf-es read it. */
const notCanonical = new Error('not the canonical encoding');

const IMPLICIT = 2; // FeatureSet.FieldPresence.IMPLICIT
/** Timestamp's JSON range, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, in seconds. */
const TIMESTAMP_MIN = -62135596800;
const TIMESTAMP_MAX = 253402300799;

interface FieldPlan {
  field: DescField;
  /** `"jsonName":`, ready to append. */
  key: string;
  /** Whether a zero value is left out, as toJson leaves out implicit-presence defaults. */
  omitZero: boolean;
  /** Index of its oneof in the message's oneofs, or -1. */
  oneof: number;
}

interface MessagePlan {
  /** Indexed by field number. */
  byNumber: Array<FieldPlan | undefined>;
  kind: 'plain' | 'timestamp' | 'unsupported';
}

const plans = new WeakMap<DescMessage, MessagePlan>();

function planOf(desc: DescMessage): MessagePlan {
  let plan = plans.get(desc);
  if (plan) return plan;
  const wkt = desc.typeName.startsWith('google.protobuf.');
  const sparse = desc.fields.some((f) => f.number > 4096); // a lookup array would be mostly holes
  const kind = desc.typeName === 'google.protobuf.Timestamp' ? 'timestamp' : sparse || (wkt && desc.typeName !== 'google.protobuf.Empty') ? 'unsupported' : 'plain';
  plan = { byNumber: [], kind };
  for (const field of desc.fields) {
    if (sparse) break;
    const oneof = field.oneof ? desc.oneofs.indexOf(field.oneof) : -1;
    const singular = field.fieldKind === 'scalar' || field.fieldKind === 'enum';
    plan.byNumber[field.number] = { field, key: `${JSON.stringify(field.jsonName)}:`, omitZero: singular && oneof < 0 && field.presence === IMPLICIT, oneof };
  }
  plans.set(desc, plan);
  return plan;
}

/** JSON of a message's bytes, as JSON.stringify(toJson(schema, fromBinary(schema, bytes))) gives it. */
export function binaryToJson(schema: DescMessage, bytes: Uint8Array): string {
  try {
    const walk = new Walk(bytes);
    const json = walk.message(bytes.length, schema);
    if (walk.reader.pos !== bytes.length) throw notCanonical;
    return json;
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    // Not canonical, or malformed: the reference decides (and throws for malformed bytes).
    return JSON.stringify(toJson(schema, fromBinary(schema, bytes)));
  }
}

/** One pass over one message's bytes. */
class Walk {
  readonly reader: BinaryReader;
  /** The same bytes as a Buffer, for native UTF-8 and base64 decoding. */
  private readonly buf: Buffer;
  private tagNo = 0;
  private tagType = 0;

  constructor(bytes: Uint8Array) {
    this.reader = new BinaryReader(bytes);
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Reads a tag into tagNo / tagType (BinaryReader.tag() allocates a tuple per field). */
  private tag(): void {
    const t = this.reader.uint32();
    this.tagNo = t >>> 3;
    this.tagType = t & 7;
    if (this.tagNo === 0 || this.tagType > 5) throw notCanonical;
  }

  message(end: number, desc: DescMessage): string {
    const plan = planOf(desc);
    if (plan.kind === 'timestamp') return this.timestamp(end);
    if (plan.kind === 'unsupported') throw notCanonical;
    const reader = this.reader;
    let out = '{';
    let last = 0;
    let oneofsSeen = 0;
    while (reader.pos < end) {
      this.tag();
      const no = this.tagNo;
      const wireType = this.tagType as WireType;
      const f = plan.byNumber[no];
      if (!f) {
        reader.skip(wireType, no); // unknown fields are not part of the JSON
        continue;
      }
      if (no <= last) throw notCanonical;
      last = no;
      if (f.oneof >= 0) {
        if (f.oneof > 30 || oneofsSeen & (1 << f.oneof)) throw notCanonical;
        oneofsSeen |= 1 << f.oneof;
      }
      const field = f.field;
      let value: string | undefined;
      switch (field.fieldKind) {
        case 'scalar':
          value = this.scalar(wireType, field.scalar, f.omitZero);
          break;
        case 'enum':
          value = this.enumValue(wireType, field.enum, f.omitZero);
          break;
        case 'message':
          value = this.nested(wireType, field.message);
          break;
        case 'list':
          value = this.list(wireType, no, end, field);
          break;
        default:
          throw notCanonical; // maps
      }
      if (value !== undefined) out += (out.length > 1 ? ',' : '') + f.key + value;
    }
    return out + '}';
  }

  /** The end of a length-delimited value that starts here. */
  private delimited(): number {
    const len = this.reader.uint32();
    const end = this.reader.pos + len;
    if (end > this.reader.len) throw notCanonical;
    return end;
  }

  private nested(wireType: WireType, desc: DescMessage): string {
    if (wireType !== WireType.LengthDelimited) throw notCanonical;
    const end = this.delimited();
    const json = this.message(end, desc);
    if (this.reader.pos !== end) throw notCanonical;
    return json;
  }

  /** Every element of a repeated field, which must come together; `undefined` when there are none. */
  private list(wireType: WireType, no: number, end: number, field: DescField & { fieldKind: 'list' }): string | undefined {
    const reader = this.reader;
    let out = '';
    for (;;) {
      let item: string;
      if (field.listKind === 'message') item = this.nested(wireType, field.message);
      else if (field.listKind === 'enum') {
        if (wireType !== WireType.LengthDelimited) item = this.enumValue(wireType, field.enum, false)!;
        else {
          item = '';
          for (const stop = this.delimited(); reader.pos < stop; ) item += (item ? ',' : '') + this.enumValue(WireType.Varint, field.enum, false)!;
        }
      } else {
        const t = field.scalar;
        if (wireType !== WireType.LengthDelimited || t === ScalarType.STRING || t === ScalarType.BYTES) item = this.scalar(wireType, t, false)!;
        else {
          item = '';
          for (const stop = this.delimited(); reader.pos < stop; ) item += (item ? ',' : '') + this.scalar(wireTypeOf(t), t, false)!;
        }
      }
      if (item) out += (out ? ',' : '') + item;
      if (reader.pos >= end) break;
      const next = reader.pos;
      this.tag();
      if (this.tagNo !== no) {
        reader.pos = next;
        break;
      }
      wireType = this.tagType as WireType;
    }
    return out ? `[${out}]` : undefined;
  }

  private enumValue(wireType: WireType, e: DescEnum, omitZero: boolean): string | undefined {
    if (wireType !== WireType.Varint || e.typeName === 'google.protobuf.NullValue') throw notCanonical;
    const n = this.reader.int32();
    if (omitZero && n === e.values[0]!.number) return undefined;
    const v = e.value[n];
    return v ? JSON.stringify(v.jsonName) : String(n);
  }

  /** A scalar's JSON text; `undefined` for an implicit-presence zero value. */
  private scalar(wireType: WireType, t: ScalarType, omitZero: boolean): string | undefined {
    if (wireType !== wireTypeOf(t)) throw notCanonical;
    const reader = this.reader;
    switch (t) {
      case ScalarType.STRING: {
        const end = this.delimited();
        const start = reader.pos;
        reader.pos = end;
        const s = this.buf.toString('utf8', start, end);
        // Node decodes invalid UTF-8 to U+FFFD; protobuf-es refuses it. Check only when one shows up.
        if (s.includes('\uFFFD') && !isUtf8(this.buf.subarray(start, end))) throw notCanonical;
        return omitZero && s === '' ? undefined : JSON.stringify(s);
      }
      case ScalarType.BYTES: {
        const end = this.delimited();
        const start = reader.pos;
        reader.pos = end;
        return omitZero && start === end ? undefined : `"${this.buf.toString('base64', start, end)}"`;
      }
      case ScalarType.BOOL: {
        const v = reader.bool();
        return omitZero && !v ? undefined : String(v);
      }
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT: {
        const v = t === ScalarType.DOUBLE ? reader.double() : reader.float();
        if (omitZero && Object.is(v, 0)) return undefined;
        return Number.isFinite(v) ? JSON.stringify(v) : Number.isNaN(v) ? '"NaN"' : v > 0 ? '"Infinity"' : '"-Infinity"';
      }
      case ScalarType.INT64:
      case ScalarType.UINT64:
      case ScalarType.SINT64:
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64: {
        const v = String(t === ScalarType.INT64 ? reader.int64() : t === ScalarType.UINT64 ? reader.uint64() : t === ScalarType.SINT64 ? reader.sint64() : t === ScalarType.FIXED64 ? reader.fixed64() : reader.sfixed64());
        return omitZero && v === '0' ? undefined : `"${v}"`;
      }
      default: {
        const v = t === ScalarType.INT32 ? reader.int32() : t === ScalarType.UINT32 ? reader.uint32() : t === ScalarType.SINT32 ? reader.sint32() : t === ScalarType.FIXED32 ? reader.fixed32() : reader.sfixed32();
        return omitZero && v === 0 ? undefined : String(v);
      }
    }
  }

  /** google.protobuf.Timestamp as RFC 3339 in UTC, with 0, 3, 6 or 9 fraction digits, as toJson writes it. */
  private timestamp(end: number): string {
    let seconds = 0;
    let nanos = 0;
    let last = 0;
    while (this.reader.pos < end) {
      this.tag();
      if (this.tagNo <= last || this.tagType !== WireType.Varint || this.tagNo > 2) throw notCanonical;
      last = this.tagNo;
      if (this.tagNo === 1) seconds = Number(this.reader.int64());
      else nanos = this.reader.int32();
    }
    if (seconds < TIMESTAMP_MIN || seconds > TIMESTAMP_MAX || nanos < 0 || nanos > 999_999_999) throw notCanonical;
    let z = 'Z';
    if (nanos > 0) {
      const digits = String(nanos + 1_000_000_000).slice(1);
      z = digits.endsWith('000000') ? `.${digits.slice(0, 3)}Z` : digits.endsWith('000') ? `.${digits.slice(0, 6)}Z` : `.${digits}Z`;
    }
    return `"${isoSecond(seconds)}${z}"`;
  }
}

/** "YYYY-MM-DDTHH:MM:SS" of a second; the last one is kept, as a batch's events share their seconds. */
let lastSecond = NaN;
let lastIso = '';
function isoSecond(seconds: number): string {
  if (seconds !== lastSecond) {
    lastIso = new Date(seconds * 1000).toISOString().slice(0, -5);
    lastSecond = seconds;
  }
  return lastIso;
}

function wireTypeOf(t: ScalarType): WireType {
  switch (t) {
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    default:
      return WireType.Varint;
  }
}
