/**
 * How an agent's AuditEvent is stored in the hash chain: its proto JSON form
 * (stable field names, enums by name) plus the id of the agent that sent it.
 * Session search and replay (session-query.ts) read exactly this shape.
 *
 * Events arrive encoded, as the agent spooled them; the stored string is
 * written straight from those bytes (binaryToJson: the JSON protobuf-es
 * would give, without building the message), with the agent id first. The
 * same event always yields the same bytes. Every event of every agent
 * passes through here.
 */
import { AuditEventSchema, auditEventIdentity, binaryToJson } from '../../../proto/src/index.js';
import type { AuditRecordInput } from './hash-chain.js';

/** An event the control plane cannot store: the agent sent bytes that are no AuditEvent. */
export class MalformedAuditEvent extends Error {}

export function auditRecordOf(agentId: string, event: Uint8Array): AuditRecordInput {
  let body: string;
  let id: { sessionId: string; sequence: number };
  try {
    body = binaryToJson(AuditEventSchema, event);
    id = auditEventIdentity(event);
  } catch (err) {
    throw new MalformedAuditEvent(`an audit event from agent ${agentId} is not a valid warden.v1.AuditEvent: ${(err as Error).message}`);
  }
  if (!id.sessionId || id.sequence < 1) throw new MalformedAuditEvent(`an audit event from agent ${agentId} has no session id or sequence`);
  const head = `{"agentId":${JSON.stringify(agentId)}`;
  return { sessionId: id.sessionId, sessionSeq: id.sequence, payload: body === '{}' ? `${head}}` : `${head},${body.slice(1)}` };
}
