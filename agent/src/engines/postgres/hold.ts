/**
 * Hold: a statement an approval rule matches waits here, before it is
 * forwarded, while the client's connection stays open. The client is told
 * (NoticeResponse) which request it waits on; the signed decision is kept
 * in the session record; an approval lets the statement run (with the
 * columns an `unmask` rule releases left unmasked), anything else makes it
 * fail in place with the approver's reason. A cancel or a disconnect
 * withdraws the request.
 */
import { durationMs } from '@bufbuild/protobuf/wkt';
import { StatementKind } from '../../../../proto/src/index.js';
import type { HoldOutcome } from '../../approval/broker.js';
import { statementHash } from '../../approval/broker.js';
import { approvalEvidenceEvent } from '../../approval/evidence.js';
import type { ApprovalCandidate } from '../../policy/approval-rules.js';
import type { HoldSubject } from '../../approval/hold-action.js';
import type { Decision } from '../../policy/decide.js';
import type { RecordedValue } from '../../audit/events.js';
import { normalizeSql } from '../../sql/index.js';
import { backend } from './wire/backend-messages.js';

export interface HoldVerdict {
  approvalRequestId: string;
  /** Set when the statement must not run: the client gets this error in its place. */
  refusal?: { message: string; ruleId: string; code: string };
  /** Output positions per statement that the approval releases unmasked. */
  unmask?: Array<Set<number>>;
}

export interface HoldContext extends HoldSubject {
  /** The role masks PHI: the request then carries the statement's shape and masked parameters only. */
  restrictsPhi: boolean;
  /** Sends a protocol message to the client at the next safe point of the stream. */
  notify(message: Buffer): void;
}

export class StatementHolds {
  private active: { id: string; cancelled?: boolean } | undefined;

  constructor(private readonly ctx: HoldContext) {}

  /**
   * `params` are the bound values as sent (the approval's hash covers them); `shown` is how the
   * session record keeps them (masked by the plan), which is what approvers see when given.
   */
  async hold(candidate: ApprovalCandidate, text: string, params: ReadonlyArray<Buffer | null>, paramFormats: readonly number[], decision: Decision, shown?: readonly RecordedValue[]): Promise<HoldVerdict> {
    const { ctx } = this;
    const rule = candidate.rule;
    let fingerprint: string;
    try {
      fingerprint = normalizeSql(text).key;
    } catch {
      fingerprint = text;
    }
    // A grant covers the statement's shape: a value typed as a literal or bound as $n is the same shape.
    const grantShape = fingerprint.replace(/\$\d+/g, '?');
    const grantKey = [ctx.identity.subject, ctx.identity.issuer, rule.id, ctx.target, grantShape].join('\0');
    const standing = ctx.broker.grant(grantKey);
    if (standing) return { approvalRequestId: standing.requestId, ...(candidate.unmask ? { unmask: candidate.unmask } : {}) };

    const timeoutMs = (rule.timeout ? durationMs(rule.timeout) : 0) || 300_000;
    const started = performance.now();
    const { id, outcome } = ctx.broker.request(
      {
        sessionId: ctx.sessionId,
        identity: { subject: ctx.identity.subject, issuer: ctx.identity.issuer, groups: ctx.identity.groups, tokenId: ctx.identity.tokenId ?? '' },
        role: ctx.role,
        target: ctx.target,
        // For PHI-restricted roles the approver sees the statement's shape (literals as `?`), as the record keeps it.
        statementText: ctx.restrictsPhi ? fingerprint : text,
        parameters: shown
          ? shown.map((v) => ({ text: v.value ?? '', isNull: v.value === null, masked: v.masked === true }))
          : params.map((p, i) => describeParam(p, paramFormats.length === 1 ? paramFormats[0]! : (paramFormats[i] ?? 0), ctx.restrictsPhi)),
        statementHash: statementHash(text, params),
        statementKind: decision.statements[0]?.kind ?? StatementKind.OTHER,
        touchedColumns: candidate.columns,
        ruleId: rule.id,
        bundleVersion: ctx.bundleVersion,
      },
      timeoutMs,
      grantKey,
    );
    this.active = { id };
    const minutes = timeoutMs >= 60_000 ? `${Math.round(timeoutMs / 60_000)} min` : `${Math.round(timeoutMs / 1000)} s`;
    ctx.notify(
      backend.noticeResponse({
        severity: 'NOTICE',
        code: '00000',
        message: `Warden: this statement needs approval (rule ${rule.id}); request ${id} is waiting for ${rule.approverGroups.join(' or ')}, for up to ${minutes}`,
      }),
    );
    const o = await outcome;
    const cancelled = this.active?.id === id && this.active.cancelled === true;
    this.active = undefined;
    this.keepEvidence(o, rule.id);
    ctx.waited?.((performance.now() - started) / 1000, o.approved ? 'approved' : 'refused');
    if (o.approved) return { approvalRequestId: id, ...(candidate.unmask ? { unmask: candidate.unmask } : {}) };
    return {
      approvalRequestId: id,
      refusal: cancelled ? { message: 'canceling statement due to user request (it was waiting for approval)', ruleId: rule.id, code: '57014' } : { message: o.reason, ruleId: rule.id, code: '42501' },
    };
  }

  /** The client cancelled: a held statement stops waiting. True if one was held. */
  cancel(): boolean {
    if (!this.active) return false;
    this.active.cancelled = true;
    this.ctx.broker.withdraw(this.active.id, 'the client cancelled the statement');
    return true;
  }

  /** The session is over: withdraw whatever still waits. */
  end(reason: string): void {
    if (this.active) this.ctx.broker.withdraw(this.active.id, reason);
  }

  private keepEvidence(o: HoldOutcome, ruleId: string): void {
    const event = approvalEvidenceEvent(this.ctx.sessionId, o, ruleId);
    if (event) this.ctx.record(event);
  }
}

function describeParam(p: Buffer | null, format: number, restricted: boolean): { text: string; isNull: boolean; masked: boolean } {
  if (p === null) return { text: '', isNull: true, masked: false };
  // A parameter may carry PHI (WHERE ssn = $1): for restricted roles the approver sees that one was bound, not its value.
  if (restricted) return { text: '', isNull: false, masked: true };
  return { text: format === 1 ? `\\x${p.toString('hex')}` : p.toString('utf8'), isNull: false, masked: false };
}
