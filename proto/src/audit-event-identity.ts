/**
 * An encoded AuditEvent's identity — session id and sequence — read from its
 * bytes without decoding the event: the agent's spool and the control
 * plane's audit path both key events by it and otherwise pass the bytes on.
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { AuditEventSchema } from '../gen/warden/v1/audit_pb.js';

const SESSION_ID = AuditEventSchema.field.sessionId!.number;
const SEQUENCE = AuditEventSchema.field.sequence!.number;

/** Throws on bytes that are not a well-formed message. */
export function auditEventIdentity(bytes: Uint8Array): { sessionId: string; sequence: number } {
  const reader = new BinaryReader(bytes);
  let sessionId = '';
  let sequence = 0;
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === SESSION_ID && wireType === WireType.LengthDelimited) sessionId = reader.string(true);
    else if (no === SEQUENCE && wireType === WireType.Varint) sequence = Number(reader.uint64());
    else reader.skip(wireType, no);
  }
  if (reader.pos !== reader.len) throw new Error('truncated message');
  return { sessionId, sequence };
}
