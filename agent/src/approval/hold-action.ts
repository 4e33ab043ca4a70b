/**
 * Holding one HTTP request or SSH action (exec command, shell start) for
 * approval: the same broker, grants, timeouts and evidence as held SQL
 * statements, for engines whose unit of work is not a statement. The
 * approval is bound to the exact action by statementHash(text, [payload]).
 */
import { durationMs } from '@bufbuild/protobuf/wkt';
import { StatementKind, type ApprovalRule } from '../../../proto/src/index.js';
import type { RecordedIdentity, SessionEvent } from '../audit/events.js';
import { statementHash, type ApprovalBroker } from './broker.js';
import { approvalEvidenceEvent } from './evidence.js';

/** Who is asking and where the evidence goes: the same for every engine's holds. */
export interface HoldSubject {
  broker: ApprovalBroker;
  sessionId: string;
  identity: RecordedIdentity;
  role: string;
  target: string;
  bundleVersion: string;
  record(event: SessionEvent): void;
  /** Observes how long the held work waited (metrics). */
  waited?(seconds: number, outcome: 'approved' | 'refused'): void;
}

export interface ActionHold extends HoldSubject {
  rule: ApprovalRule;
  /** What the approver reads and the record keeps, e.g. "DELETE /api/patients/7" or "rm -rf /data". */
  text: string;
  /** Bytes the approval also binds (a request body); not shown to the approver. */
  payload?: Buffer;
  /** Told once the request is sent: its id and how long it may wait. */
  waiting?(requestId: string, timeoutMs: number): void;
}

export interface ActionVerdict {
  approved: boolean;
  requestId: string;
  /** Why the action does not run (the approver's reason, expiry, withdrawal). */
  reason?: string;
}

export interface PendingAction {
  verdict: Promise<ActionVerdict>;
  /** The client went away: stop waiting and tell the control plane. */
  withdraw(reason: string): void;
}

export function holdAction(h: ActionHold): PendingAction {
  const grantKey = [h.identity.subject, h.identity.issuer, h.rule.id, h.target, h.text].join('\0');
  const standing = h.broker.grant(grantKey);
  if (standing) return { verdict: Promise.resolve({ approved: true, requestId: standing.requestId }), withdraw: () => undefined };
  const timeoutMs = (h.rule.timeout ? durationMs(h.rule.timeout) : 0) || 300_000;
  const { id, outcome } = h.broker.request(
    {
      sessionId: h.sessionId,
      identity: { subject: h.identity.subject, issuer: h.identity.issuer, groups: h.identity.groups, tokenId: h.identity.tokenId ?? '' },
      role: h.role,
      target: h.target,
      statementText: h.text,
      parameters: [],
      statementHash: statementHash(h.text, h.payload ? [h.payload] : []),
      statementKind: StatementKind.OTHER,
      touchedColumns: [],
      ruleId: h.rule.id,
      bundleVersion: h.bundleVersion,
    },
    timeoutMs,
    grantKey,
  );
  h.waiting?.(id, timeoutMs);
  const started = performance.now();
  const verdict = outcome.then((o): ActionVerdict => {
    h.waited?.((performance.now() - started) / 1000, o.approved ? 'approved' : 'refused');
    const evidence = approvalEvidenceEvent(h.sessionId, o, h.rule.id);
    if (evidence) h.record(evidence);
    return o.approved ? { approved: true, requestId: id } : { approved: false, requestId: id, reason: o.reason };
  });
  return { verdict, withdraw: (reason) => h.broker.withdraw(id, reason) };
}
