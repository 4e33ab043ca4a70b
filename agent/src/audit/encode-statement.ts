/**
 * A statement event straight to AuditEvent bytes. Statements are nearly
 * every event the spool encodes; building the message with create() and
 * serializing it with toBinary() costs ~10 µs and an object graph per
 * statement, which this writes in one pass into the spool's own writer.
 *
 * The bytes are exactly toBinary(AuditEventSchema, toAuditEvent(e)) —
 * to-proto.ts stays the readable mapping, and encode-statement.test.ts
 * holds the two to the same bytes field by field. Field numbers come from
 * the generated descriptors, never from literals.
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type { DescMessage } from '@bufbuild/protobuf';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import {
  AuditEventSchema,
  DatumSchema,
  HttpExchangeSchema,
  ResultSampleSchema,
  SampleRowSchema,
  StatementErrorSchema,
  StatementEventSchema,
} from '../../../proto/src/index.js';
import type { StatementEvent } from './events.js';
import { DECISION, PROTOCOL } from './to-proto.js';

/** Field numbers by local name, read once from a message's descriptor. */
function numbers<const K extends string>(schema: DescMessage, names: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const n of names) {
    const f = schema.fields.find((x) => x.localName === n);
    if (!f) throw new Error(`${schema.typeName} has no field ${n}`);
    out[n] = f.number;
  }
  return out;
}

const EV = numbers(AuditEventSchema, ['sessionId', 'sequence', 'statement']);
const ST = numbers(StatementEventSchema, [
  'text', 'parameters', 'decision', 'ruleIds', 'maskedColumns', 'rowCount', 'resultSha256', 'sample', 'error', 'startedAt', 'durationUs',
  'protocol', 'commandTag', 'approvalRequestId', 'truncated', 'tables', 'touchedColumns', 'maskedValues', 'returnedValues', 'http',
]);
const DATUM = numbers(DatumSchema, ['text', 'isNull', 'masked']);
const SAMPLE = numbers(ResultSampleSchema, ['columns', 'rows', 'truncated']);
const ROW = numbers(SampleRowSchema, ['cells']);
const ERR = numbers(StatementErrorSchema, ['sqlstate', 'message']);
const TS = numbers(TimestampSchema, ['seconds', 'nanos']);
const HTTP = numbers(HttpExchangeSchema, [
  'method', 'path', 'status', 'responseContentType', 'responseSha256', 'responseBody', 'responseTruncated', 'maskedFields', 'responseBytes', 'requestBody', 'requestBytes',
]);

const LEN = WireType.LengthDelimited;
const VARINT = WireType.Varint;

// proto3 leaves out fields holding their zero value; so do these.
function str(w: BinaryWriter, no: number, v: string): void {
  if (v !== '') w.tag(no, LEN).string(v);
}
function u64(w: BinaryWriter, no: number, v: number): void {
  if (v !== 0) w.tag(no, VARINT).uint64(v);
}
function flag(w: BinaryWriter, no: number, v: boolean): void {
  if (v) w.tag(no, VARINT).bool(true);
}
/** int32 and enum values. */
function i32(w: BinaryWriter, no: number, v: number): void {
  if (v !== 0) w.tag(no, VARINT).int32(v);
}
function hex(w: BinaryWriter, no: number, v: string): void {
  if (v !== '') w.tag(no, LEN).bytes(Buffer.from(v, 'hex'));
}
function strings(w: BinaryWriter, no: number, vs: readonly string[] | undefined): void {
  if (vs) for (const v of vs) w.tag(no, LEN).string(v);
}
function datum(w: BinaryWriter, no: number, text: string | null, masked: boolean): void {
  w.tag(no, LEN).fork();
  str(w, DATUM.text, text ?? '');
  flag(w, DATUM.isNull, text === null);
  flag(w, DATUM.masked, masked);
  w.join();
}

/** Appends one statement event, as an AuditEvent, to `w`. */
export function encodeStatement(w: BinaryWriter, e: StatementEvent, sequence: number): void {
  str(w, EV.sessionId, e.sessionId);
  u64(w, EV.sequence, sequence);
  w.tag(EV.statement, LEN).fork();
  str(w, ST.text, e.text);
  if (e.parameters) for (const p of e.parameters) datum(w, ST.parameters, p.value, p.masked ?? false);
  i32(w, ST.decision, DECISION[e.decision] ?? 0);
  strings(w, ST.ruleIds, e.ruleIds);
  if (e.maskedColumns) for (const m of e.maskedColumns) w.tag(ST.maskedColumns, LEN).string(`${m.column}:${m.strategy}`);
  u64(w, ST.rowCount, e.rows);
  hex(w, ST.resultSha256, e.resultSha256 ?? '');
  const sample = e.sample;
  if (sample) {
    w.tag(ST.sample, LEN).fork();
    strings(w, SAMPLE.columns, sample.columns);
    for (const row of sample.rows) {
      w.tag(SAMPLE.rows, LEN).fork();
      for (let i = 0; i < row.length; i++) datum(w, ROW.cells, row[i]!, sample.maskedColumns.includes(i));
      w.join();
    }
    flag(w, SAMPLE.truncated, sample.truncated);
    w.join();
  }
  if (e.error) {
    w.tag(ST.error, LEN).fork();
    str(w, ERR.sqlstate, e.error.code);
    str(w, ERR.message, e.error.message);
    w.join();
  }
  const ms = Date.parse(e.at);
  const seconds = Math.floor(ms / 1000);
  w.tag(ST.startedAt, LEN).fork();
  if (seconds !== 0) w.tag(TS.seconds, VARINT).int64(seconds);
  i32(w, TS.nanos, (ms - seconds * 1000) * 1_000_000);
  w.join();
  u64(w, ST.durationUs, Math.round(e.durationMs * 1000));
  i32(w, ST.protocol, PROTOCOL[e.protocol] ?? 0);
  str(w, ST.commandTag, e.tag ?? '');
  str(w, ST.approvalRequestId, e.approvalRequestId ?? '');
  flag(w, ST.truncated, e.truncated ?? false);
  strings(w, ST.tables, e.tables);
  strings(w, ST.touchedColumns, e.touchedColumns);
  u64(w, ST.maskedValues, e.maskedValues ?? 0);
  u64(w, ST.returnedValues, e.returnedValues ?? 0);
  const http = e.http;
  if (http) {
    w.tag(ST.http, LEN).fork();
    str(w, HTTP.method, http.method);
    str(w, HTTP.path, http.path);
    if (http.status !== 0) w.tag(HTTP.status, VARINT).uint32(http.status);
    str(w, HTTP.responseContentType, http.responseContentType);
    hex(w, HTTP.responseSha256, http.responseSha256);
    str(w, HTTP.responseBody, http.responseBody);
    flag(w, HTTP.responseTruncated, http.responseTruncated);
    strings(w, HTTP.maskedFields, http.maskedFields);
    u64(w, HTTP.responseBytes, http.responseBytes);
    str(w, HTTP.requestBody, http.requestBody);
    u64(w, HTTP.requestBytes, http.requestBytes);
    w.join();
  }
  w.join();
}
