/**
 * The signed decision about a held statement or request, as the session
 * record keeps it: every engine records the same evidence the same way.
 */
import type { HoldOutcome } from './broker.js';
import type { SessionEvent } from '../audit/events.js';

const OUTCOME = ['unspecified', 'approve', 'deny', 'expired', 'withdrawn'] as const;

/** The approval event for a decided request, or undefined when no signed decision came (timeout, no link). */
export function approvalEvidenceEvent(sessionId: string, o: HoldOutcome, ruleId: string): SessionEvent | undefined {
  if (!o.evidence || !o.record) return undefined;
  return {
    type: 'approval',
    sessionId,
    at: new Date().toISOString(),
    requestId: o.requestId,
    ruleId,
    outcome: (OUTCOME[o.record.outcome] ?? 'deny') as 'approve',
    signedRecord: Buffer.from(o.evidence.signedRecord).toString('base64'),
    signature: Buffer.from(o.evidence.signature).toString('base64'),
    keyId: o.evidence.keyId,
  };
}
