/**
 * Session events as the audit stream carries them (proto AuditEvent), so the
 * control plane stores one typed, versioned shape whatever agent sent it.
 */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  AuditEventSchema,
  SessionEndReason,
  StatementDecision,
  StatementProtocol,
  type AuditEvent,
} from '../../../proto/src/index.js';
import type { SessionEvent } from './events.js';

export const DECISION: Record<string, StatementDecision> = {
  allow: StatementDecision.ALLOW,
  mask: StatementDecision.MASK,
  deny: StatementDecision.DENY,
  approved: StatementDecision.APPROVED,
  unchecked: StatementDecision.UNSPECIFIED,
};
export const PROTOCOL: Record<string, StatementProtocol> = {
  simple: StatementProtocol.SIMPLE,
  extended: StatementProtocol.EXTENDED,
  'function-call': StatementProtocol.FUNCTION_CALL,
  http: StatementProtocol.HTTP,
  ssh: StatementProtocol.SSH,
};
const END: Record<string, SessionEndReason> = {
  client_terminate: SessionEndReason.CLIENT_TERMINATE,
  client_disconnect: SessionEndReason.CLIENT_DISCONNECT,
  upstream_closed: SessionEndReason.UPSTREAM_CLOSED,
  upstream_error: SessionEndReason.UPSTREAM_ERROR,
  protocol_error: SessionEndReason.PROTOCOL_ERROR,
  auth_failed: SessionEndReason.AUTH_FAILED,
  agent_shutdown: SessionEndReason.AGENT_SHUTDOWN,
};

/** The mapping, as messages. Statements are spooled through encode-statement.ts, which writes the same bytes directly. */
export function toAuditEvent(e: SessionEvent, sequence: number, bundleVersion = ''): AuditEvent {
  const at = timestampFromDate(new Date(e.at));
  const base = { sessionId: e.sessionId, sequence: BigInt(sequence) };
  switch (e.type) {
    case 'session.start':
      return create(AuditEventSchema, {
        ...base,
        kind: {
          case: 'sessionStart',
          value: {
            identity: { subject: e.identity.subject, issuer: e.identity.issuer, groups: e.identity.groups, tokenId: e.identity.tokenId ?? '' },
            role: e.role,
            clientAddress: e.clientAddress,
            agentId: e.agentId,
            target: e.target,
            listener: e.listener,
            bundleVersion,
            startedAt: at,
            tls: e.tls,
            applicationName: e.applicationName ?? '',
          },
        },
      });
    case 'statement':
      return create(AuditEventSchema, {
        ...base,
        kind: {
          case: 'statement',
          value: {
            text: e.text,
            decision: DECISION[e.decision] ?? StatementDecision.UNSPECIFIED,
            ruleIds: e.ruleIds ?? [],
            maskedColumns: (e.maskedColumns ?? []).map((m) => `${m.column}:${m.strategy}`),
            rowCount: BigInt(e.rows),
            ...(e.error ? { error: { sqlstate: e.error.code, message: e.error.message } } : {}),
            startedAt: at,
            durationUs: BigInt(Math.round(e.durationMs * 1000)),
            protocol: PROTOCOL[e.protocol] ?? StatementProtocol.UNSPECIFIED,
            commandTag: e.tag ?? '',
            truncated: e.truncated ?? false,
            approvalRequestId: e.approvalRequestId ?? '',
            touchedColumns: e.touchedColumns ?? [],
            maskedValues: BigInt(e.maskedValues ?? 0),
            returnedValues: BigInt(e.returnedValues ?? 0),
            tables: e.tables ?? [],
            parameters: (e.parameters ?? []).map((p) => ({ text: p.value ?? '', isNull: p.value === null, masked: p.masked ?? false })),
            ...(e.resultSha256 ? { resultSha256: Buffer.from(e.resultSha256, 'hex') } : {}),
            ...(e.sample
              ? {
                  sample: {
                    columns: e.sample.columns,
                    truncated: e.sample.truncated,
                    rows: e.sample.rows.map((row) => ({
                      cells: row.map((v, i) => ({ text: v ?? '', isNull: v === null, masked: e.sample!.maskedColumns.includes(i) })),
                    })),
                  },
                }
              : {}),
            ...(e.http ? { http: { ...e.http, responseSha256: Buffer.from(e.http.responseSha256, 'hex'), responseBytes: BigInt(e.http.responseBytes), requestBytes: BigInt(e.http.requestBytes) } } : {}),
          },
        },
      });
    case 'session.end':
      return create(AuditEventSchema, {
        ...base,
        kind: { case: 'sessionEnd', value: { reason: END[e.reason] ?? SessionEndReason.UNSPECIFIED, detail: e.detail ?? '', endedAt: at, statementCount: BigInt(e.statements) } },
      });
    case 'approval':
      return create(AuditEventSchema, {
        ...base,
        kind: {
          case: 'approval',
          value: { requestId: e.requestId, signedRecord: Buffer.from(e.signedRecord, 'base64'), signature: Buffer.from(e.signature, 'base64'), keyId: e.keyId },
        },
      });
    case 'terminal':
      return create(AuditEventSchema, { ...base, kind: { case: 'terminal', value: { channel: e.channel, asciicast: e.asciicast } } });
    case 'auth.refused':
      return create(AuditEventSchema, {
        ...base,
        kind: { case: 'authRefused', value: { agentId: e.agentId, listener: e.listener, clientAddress: e.clientAddress, sqlstate: e.sqlState, reason: e.reason, subject: e.subject ?? '', refusedAt: at } },
      });
  }
}
