/**
 * binaryToJson must give exactly the JSON protobuf-es gives
 * (toJson(fromBinary(bytes))) — for every scalar type, enums, oneofs,
 * nested and repeated messages, packed and unpacked lists, Timestamps — and
 * must hand every encoding it does not read itself (out of order, split
 * lists, maps, other well-known types) to protobuf-es, refusing what
 * protobuf-es refuses.
 */
import { create, createFileRegistry, fromBinary, toBinary, toJson, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { FileDescriptorProtoSchema, file_google_protobuf_timestamp, file_google_protobuf_struct, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { AuditEventSchema, PolicyBundleSchema, StatementDecision, StatementKind, StatementProtocol, binaryToJson } from '../../proto/src/index.js';

/** A test schema with every scalar type, singular (implicit and explicit presence) and repeated. */
const SCALARS = ['double', 'float', 'int64', 'uint64', 'int32', 'fixed64', 'fixed32', 'bool', 'string', 'bytes', 'uint32', 'sfixed32', 'sfixed64', 'sint32', 'sint64'] as const;
const TYPE: Record<(typeof SCALARS)[number], number> = { double: 1, float: 2, int64: 3, uint64: 4, int32: 5, fixed64: 6, fixed32: 7, bool: 8, string: 9, bytes: 12, uint32: 13, sfixed32: 15, sfixed64: 16, sint32: 17, sint64: 18 };

const jsonName = (name: string): string => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
/** protoc fills in every field's json_name; a hand-built descriptor must too. */
const named = <F extends { name: string }>(fields: F[]): Array<F & { jsonName: string }> => fields.map((f) => ({ ...f, jsonName: jsonName(f.name) }));

const registry = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: 'wt/test.proto',
    package: 'wt',
    syntax: 'proto3',
    dependency: ['google/protobuf/timestamp.proto', 'google/protobuf/struct.proto'],
    enumType: [{ name: 'Color', value: [{ name: 'COLOR_UNSPECIFIED', number: 0 }, { name: 'COLOR_RED', number: 1 }, { name: 'COLOR_BLUE', number: 2 }] }],
    messageType: [
      {
        name: 'All',
        field: named([
          ...SCALARS.map((s, i) => ({ name: `s_${s}`, number: i + 1, label: 1, type: TYPE[s] })),
          ...SCALARS.map((s, i) => ({ name: `o_${s}`, number: i + 21, label: 1, type: TYPE[s], proto3Optional: true, oneofIndex: i + 1 })),
          ...SCALARS.map((s, i) => ({ name: `r_${s}`, number: i + 41, label: 3, type: TYPE[s] })),
          { name: 'color', number: 60, label: 1, type: 14, typeName: '.wt.Color' },
          { name: 'colors', number: 61, label: 3, type: 14, typeName: '.wt.Color' },
          { name: 'child', number: 62, label: 1, type: 11, typeName: '.wt.All' },
          { name: 'children', number: 63, label: 3, type: 11, typeName: '.wt.All' },
          { name: 'at', number: 64, label: 1, type: 11, typeName: '.google.protobuf.Timestamp' },
          { name: 'ats', number: 65, label: 3, type: 11, typeName: '.google.protobuf.Timestamp' },
          { name: 'pick_text', number: 66, label: 1, type: 9, oneofIndex: 0 },
          { name: 'pick_child', number: 67, label: 1, type: 11, typeName: '.wt.All', oneofIndex: 0 },
          { name: 'pick_zero', number: 68, label: 1, type: 5, oneofIndex: 0 },
          { name: 'labels', number: 69, label: 3, type: 11, typeName: '.wt.All.LabelsEntry' },
          { name: 'meta', number: 70, label: 1, type: 11, typeName: '.google.protobuf.Struct' },
        ]),
        nestedType: [{ name: 'LabelsEntry', field: named([{ name: 'key', number: 1, label: 1, type: 9 }, { name: 'value', number: 2, label: 1, type: 9 }]), options: { mapEntry: true } }],
        oneofDecl: [{ name: 'pick' }, ...SCALARS.map((s) => ({ name: `_o_${s}` }))],
      },
    ],
  }),
  (name) => (name === 'google/protobuf/timestamp.proto' ? file_google_protobuf_timestamp : name === 'google/protobuf/struct.proto' ? file_google_protobuf_struct : undefined),
);
const All = registry.getMessage('wt.All')!;

/** Deterministic pseudo-random values, so a failure reproduces. */
function rng(seed: number): () => number {
  return () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}

function value(kind: (typeof SCALARS)[number], r: () => number): unknown {
  const edge = r() < 0.25;
  switch (kind) {
    case 'double':
      return edge ? [0, -0, NaN, Infinity, -Infinity, 1e308, 5e-324][Math.floor(r() * 7)] : (r() - 0.5) * 1e6;
    case 'float':
      return edge ? [0, -0, NaN, Infinity][Math.floor(r() * 4)] : Math.fround((r() - 0.5) * 1e4);
    case 'int64': case 'sint64': case 'sfixed64':
      return edge ? [0n, -1n, -(2n ** 63n), 2n ** 63n - 1n][Math.floor(r() * 4)] : BigInt(Math.floor((r() - 0.5) * 1e15));
    case 'uint64': case 'fixed64':
      return edge ? [0n, 2n ** 64n - 1n][Math.floor(r() * 2)] : BigInt(Math.floor(r() * 1e15));
    case 'int32': case 'sint32': case 'sfixed32':
      return edge ? [0, -1, -(2 ** 31), 2 ** 31 - 1][Math.floor(r() * 4)] : Math.floor((r() - 0.5) * 1e9);
    case 'uint32': case 'fixed32':
      return edge ? [0, 2 ** 32 - 1][Math.floor(r() * 2)] : Math.floor(r() * 4e9);
    case 'bool':
      return r() < 0.5;
    case 'string':
      return edge ? ['', 'é"\\\n\u2028😀', '</script>', '\u0000'][Math.floor(r() * 4)] : `v${Math.floor(r() * 1e6)}`;
    case 'bytes':
      return edge ? new Uint8Array(0) : Uint8Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256));
  }
}

function randomAll(r: () => number, depth = 0): MessageShape<typeof All> {
  const init: Record<string, unknown> = {};
  for (const s of SCALARS) {
    if (r() < 0.7) init[`s${s[0]!.toUpperCase()}${s.slice(1)}`] = value(s, r);
    if (r() < 0.3) init[`o${s[0]!.toUpperCase()}${s.slice(1)}`] = value(s, r);
    if (r() < 0.4) init[`r${s[0]!.toUpperCase()}${s.slice(1)}`] = Array.from({ length: Math.floor(r() * 4) }, () => value(s, r));
  }
  init.color = Math.floor(r() * 4); // 3 is not a declared value: toJson writes the number
  init.colors = Array.from({ length: Math.floor(r() * 3) }, () => Math.floor(r() * 3));
  if (r() < 0.5) init.at = timestampFromDate(new Date(Math.floor(r() * 4e12) + (r() < 0.5 ? 0.123 : 0)));
  if (r() < 0.3) init.ats = [timestampFromDate(new Date(0)), { seconds: 1n, nanos: 1 }, { seconds: 2n, nanos: 1000 }];
  if (depth < 2 && r() < 0.4) init.child = randomAll(r, depth + 1);
  if (depth < 2 && r() < 0.3) init.children = [randomAll(r, depth + 1), create(All)];
  const pick = Math.floor(r() * 4);
  if (pick === 1) init.pick = { case: 'pickText', value: value('string', r) };
  if (pick === 2 && depth < 2) init.pick = { case: 'pickChild', value: randomAll(r, depth + 1) };
  if (pick === 3) init.pick = { case: 'pickZero', value: 0 };
  return create(All, init);
}

const reference = (desc: DescMessage, bytes: Uint8Array): string => JSON.stringify(toJson(desc, fromBinary(desc, bytes)));

describe('binaryToJson', () => {
  it('gives protobuf-es JSON, byte for byte, for 500 random messages of every scalar, list, oneof and nested shape', () => {
    const r = rng(42);
    for (let i = 0; i < 500; i++) {
      const bytes = toBinary(All, randomAll(r));
      expect(binaryToJson(All, bytes)).toBe(reference(All, bytes));
    }
  });

  it('gives protobuf-es JSON for audit events of every kind and for a whole policy bundle (maps go to protobuf-es)', () => {
    const events = [
      create(AuditEventSchema, { sessionId: 's-1', sequence: 1n, kind: { case: 'sessionStart', value: { identity: { subject: 'a', issuer: 'https://idp', groups: ['g1', 'g2'] }, role: 'r', startedAt: timestampFromDate(new Date('2025-01-02T03:04:05.678Z')), tls: true } } }),
      create(AuditEventSchema, {
        sessionId: 's-1', sequence: 2n,
        kind: { case: 'statement', value: { text: 'SELECT "é" FROM t WHERE id = $1', parameters: [{ text: '4' }, { isNull: true }], decision: StatementDecision.MASK, ruleIds: ['x'], rowCount: 3n, resultSha256: new Uint8Array(32).fill(9), sample: { columns: ['a'], rows: [{ cells: [{ text: 'tok_1', masked: true }] }] }, kind: StatementKind.SELECT, protocol: StatementProtocol.EXTENDED, durationUs: 0n, returnedValues: 6n } },
      }),
      create(AuditEventSchema, { sessionId: 's-1', sequence: 3n, kind: { case: 'terminal', value: { channel: 0, asciicast: '[0.5,"o","$ ls\\r\\n"]\n' } } }),
      create(AuditEventSchema, { sessionId: 's-1', sequence: 4n, kind: { case: 'approval', value: { requestId: 'q', signedRecord: new Uint8Array([1, 2, 3]), signature: new Uint8Array(64) } } }),
      create(AuditEventSchema, { sessionId: 's-1', sequence: 5n, kind: { case: 'sessionEnd', value: {} } }),
    ];
    for (const e of events) {
      const bytes = toBinary(AuditEventSchema, e);
      expect(binaryToJson(AuditEventSchema, bytes)).toBe(reference(AuditEventSchema, bytes));
    }
    const bundle = toBinary(PolicyBundleSchema, create(PolicyBundleSchema, { version: 'v', roles: [{ name: 'r', targets: ['db'] }], targets: [{ name: 'db' }] }));
    expect(JSON.parse(binaryToJson(PolicyBundleSchema, bundle))).toEqual(toJson(PolicyBundleSchema, fromBinary(PolicyBundleSchema, bundle)));
  });

  it('hands non-canonical encodings to protobuf-es: fields out of order, a singular field twice, a split list, unpacked numbers, two oneof members, unknown fields, maps, Struct', () => {
    const w = (build: (w: BinaryWriter) => void): Uint8Array => {
      const writer = new BinaryWriter();
      build(writer);
      return writer.finish();
    };
    const cases = [
      w((x) => x.tag(9, WireType.LengthDelimited).string('b').tag(5, WireType.Varint).int32(7)),
      w((x) => x.tag(9, WireType.LengthDelimited).string('first').tag(9, WireType.LengthDelimited).string('last wins')),
      w((x) => x.tag(49, WireType.LengthDelimited).string('a').tag(9, WireType.LengthDelimited).string('x').tag(49, WireType.LengthDelimited).string('b')),
      w((x) => x.tag(45, WireType.Varint).int32(1).tag(45, WireType.Varint).int32(2).tag(45, WireType.LengthDelimited).fork().int32(3).int32(4).join()),
      w((x) => x.tag(66, WireType.LengthDelimited).string('text').tag(68, WireType.Varint).int32(0)),
      w((x) => x.tag(5, WireType.Varint).int32(1).tag(999, WireType.LengthDelimited).string('unknown').tag(9, WireType.LengthDelimited).string('after')),
      w((x) => x.tag(69, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string('k').tag(2, WireType.LengthDelimited).string('v').join()),
      w((x) => x.tag(70, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string('k').tag(2, WireType.LengthDelimited).fork().tag(3, WireType.LengthDelimited).string('v').join().join().join()),
      w((x) => x.tag(64, WireType.LengthDelimited).fork().tag(2, WireType.Varint).int32(5).tag(1, WireType.Varint).int64(10).join()),
    ];
    for (const bytes of cases) expect(binaryToJson(All, bytes)).toBe(reference(All, bytes));
  });

  it('refuses what protobuf-es refuses: truncated bytes, a length past the end, a wrong wire type, invalid UTF-8, a Timestamp out of range', () => {
    const good = toBinary(All, create(All, { sString: 'hello', child: { sInt32: 5 } }));
    const bad = [
      good.subarray(0, good.length - 2),
      Uint8Array.from([0x4a, 0x7f, 0x61]), // string field 9, length 127, one byte
      Uint8Array.from([0x48, 0x01]), // string field 9 sent as a varint
      Uint8Array.from([0x4a, 0x02, 0xc3, 0x28]), // invalid UTF-8
      new BinaryWriter().tag(64, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int64(300_000_000_000n).join().finish(),
    ];
    for (const bytes of bad) {
      expect(() => reference(All, bytes)).toThrow();
      expect(() => binaryToJson(All, bytes)).toThrow();
    }
  });
});
