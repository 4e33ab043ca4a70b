/**
 * How an agent's AuditEvent is stored in the hash chain: its proto JSON form
 * (stable field names, enums by name) plus the id of the agent that sent it.
 * Session search and replay (session-query.ts) read exactly this shape.
 */
import { toJson } from '@bufbuild/protobuf';
import { AuditEventSchema, type AuditEvent } from '../../../proto/src/index.js';
import type { AuditRecordInput } from './hash-chain.js';
import { canonicalJson } from './canonical.js';

/** The record with its canonical payload made up front, so appends spend their lock on hashing and SQL only. */
export function auditRecordOf(agentId: string, e: AuditEvent): AuditRecordInput {
  // Only the string is kept: holding the object graph until the append commits costs the collector dearly.
  return { sessionId: e.sessionId, sessionSeq: Number(e.sequence), payload: canonicalJson({ agentId, ...(toJson(AuditEventSchema, e) as object) }) };
}
