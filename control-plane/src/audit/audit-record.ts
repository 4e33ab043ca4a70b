/**
 * How an agent's AuditEvent is stored in the hash chain: its proto JSON form
 * (stable field names, enums by name) plus the id of the agent that sent it.
 * Session search and replay (session-query.ts) read exactly this shape.
 *
 * The stored string is the record's canonical encoding: the agent id first,
 * then protobuf-es's JSON of the event, whose fields always come in field-
 * number order with defaults omitted, so the same event always yields the
 * same bytes. One native JSON.stringify per event, with no key sorting and
 * no object graph kept: every event of every agent passes through here.
 */
import { toJson } from '@bufbuild/protobuf';
import { AuditEventSchema, type AuditEvent } from '../../../proto/src/index.js';
import type { AuditRecordInput } from './hash-chain.js';

export function auditRecordOf(agentId: string, e: AuditEvent): AuditRecordInput {
  const body = JSON.stringify(toJson(AuditEventSchema, e));
  const head = `{"agentId":${JSON.stringify(agentId)}`;
  return { sessionId: e.sessionId, sessionSeq: Number(e.sequence), payload: body === '{}' ? `${head}}` : `${head},${body.slice(1)}` };
}
