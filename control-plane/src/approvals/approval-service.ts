/**
 * Deciding approval requests: who may vote (the rule's approver groups,
 * never the requester unless the rule allows it), when a request is decided
 * (a quorum of distinct approvers; a single deny denies; the timeout
 * expires it), and the signed ApprovalRecord that proves each outcome.
 *
 * Replicas share the store; every final decision is announced on the bus so
 * the replica that holds the agent's stream delivers it.
 */
import { EventEmitter } from 'node:events';
import { create, toBinary } from '@bufbuild/protobuf';
import { durationMs, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Logger } from 'pino';
import {
  ApprovalOutcome,
  ApprovalRecordSchema,
  ApprovalScope,
  approvalSignedBytes,
  type ApprovalDecision,
  type ApprovalRequest,
  type ApprovalRule,
} from '../../../proto/src/index.js';
import type { SigningKey } from '../distribution/signing-key.js';
import { ApprovalStore, VoteRefused, type ApprovalState, type StoredApproval, type Vote } from './approval-store.js';
import type { ApprovalBus } from './approval-bus.js';

export { VoteRefused };

export interface Approver {
  subject: string;
  issuer: string;
  groups: string[];
}

const OUTCOME_OF: Record<Exclude<ApprovalState, 'pending'>, ApprovalOutcome> = {
  approved: ApprovalOutcome.APPROVE,
  denied: ApprovalOutcome.DENY,
  expired: ApprovalOutcome.EXPIRED,
  withdrawn: ApprovalOutcome.WITHDRAWN,
};

export interface ApprovalServiceOptions {
  store: ApprovalStore;
  key: SigningKey;
  bus: ApprovalBus;
  /** The approval rule by id in the bundle in force. */
  rule(id: string): ApprovalRule | undefined;
  log: Logger;
  /** How often pending requests are checked for expiry. */
  sweepMs?: number;
}

export class ApprovalService extends EventEmitter<{
  created: [StoredApproval];
  announced: [string];
  decided: [StoredApproval];
  /** A request this replica closed (once per request across replicas): seconds it was open. */
  closed: [id: string, state: Exclude<ApprovalState, 'pending'>, seconds: number];
}> {
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ApprovalServiceOptions) {
    super();
    // New requests stored by any replica (this one included): for views and counters on every replica.
    opts.bus.onCreated((id) => this.emit('announced', id));
    // Decisions taken on any replica (this one included) arrive here once.
    opts.bus.onDecided((id) => {
      void this.opts.store.get(id).then((a) => a && this.emit('decided', a), (err: unknown) => this.opts.log.error({ err: (err as Error).message, id }, 'cannot load a decided approval'));
    });
  }

  start(): void {
    const every = this.opts.sweepMs ?? 1000;
    this.sweeper = setInterval(() => void this.expireDue().catch((err: unknown) => this.opts.log.error({ err: (err as Error).message }, 'approval sweep failed')), every);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /**
   * A request from an agent. Returns the decision at once when the request was already decided (the
   * agent resent it after a reconnect), else undefined.
   */
  async received(agentId: string, req: ApprovalRequest): Promise<ApprovalDecision | undefined> {
    if (req.agentId !== agentId) throw new Error(`agent ${agentId} sent a request in the name of ${req.agentId}`);
    const rule = this.opts.rule(req.ruleId);
    const timeoutMs = rule?.timeout ? durationMs(rule.timeout) : 300_000;
    // The control plane's own clock bounds the wait, whatever the agent asked for.
    const expiresAt = new Date(Date.now() + timeoutMs);
    const fresh = await this.opts.store.insert(agentId, req, expiresAt);
    const stored = await this.opts.store.get(req.id);
    if (!stored) throw new Error(`approval request ${req.id} vanished`);
    if (fresh) {
      this.opts.log.info({ requestId: req.id, rule: req.ruleId, requester: req.identity?.subject, agentId }, 'approval requested');
      if (!rule) await this.finalize(req.id, 'denied', undefined, `rule ${req.ruleId} is not in the configuration in force`);
      else {
        // Only the replica the agent talks to notifies approvers (chat); every replica hears of it.
        this.emit('created', stored);
        await this.opts.bus.publishCreated(req.id);
      }
    }
    return stored.state === 'pending' ? undefined : decisionOf(stored);
  }

  /** Whether the request has reached the store (tests and tools wait on it). */
  async known(id: string): Promise<boolean> {
    return (await this.opts.store.get(id)) !== undefined;
  }

  /** An approver's vote. Returns the request as it stands afterwards. */
  async vote(id: string, who: Approver, vote: 'approve' | 'deny', comment: string, via: Vote['via']): Promise<StoredApproval> {
    let finalState: Exclude<ApprovalState, 'pending'> | undefined;
    let openedAt = 0;
    await this.opts.store.withLocked(id, async (a, tx) => {
      openedAt = a.createdAt.getTime();
      if (a.state !== 'pending') throw new VoteRefused(409, `request ${id} is already ${a.state}`);
      if (a.expiresAt.getTime() <= Date.now()) throw new VoteRefused(409, `request ${id} has expired`);
      const rule = this.opts.rule(a.request.ruleId);
      if (!rule) throw new VoteRefused(409, `rule ${a.request.ruleId} is no longer in the configuration in force`);
      if (!who.groups.some((g) => rule.approverGroups.includes(g))) {
        throw new VoteRefused(403, `${who.subject} is not in an approver group of rule ${rule.id} (${rule.approverGroups.join(', ')})`);
      }
      const requester = a.request.identity;
      if (!rule.allowSelfApproval && requester && requester.subject === who.subject) {
        throw new VoteRefused(403, `${who.subject} requested this statement and cannot approve or deny it (separation of duties)`);
      }
      await tx.vote({ subject: who.subject, issuer: who.issuer, vote, comment, via });
      const approvals = a.votes.filter((v) => v.vote === 'approve').length;
      if (vote === 'deny') finalState = 'denied';
      else if (approvals >= Math.max(1, rule.quorum)) finalState = 'approved';
      if (finalState) await this.sign(a, finalState, rule, tx.finalize);
    });
    if (finalState) {
      this.opts.log.info({ requestId: id, state: finalState }, 'approval decided');
      this.emit('closed', id, finalState, (Date.now() - openedAt) / 1000);
      await this.opts.bus.publishDecided(id);
    }
    return (await this.opts.store.get(id))!;
  }

  /** The agent stopped waiting (client cancelled or disconnected). */
  async withdraw(agentId: string, id: string, reason: string): Promise<void> {
    const a = await this.opts.store.get(id);
    if (!a || a.agentId !== agentId || a.state !== 'pending') return;
    await this.finalize(id, 'withdrawn', undefined, reason);
  }

  async expireDue(now = new Date()): Promise<number> {
    const ids = await this.opts.store.due(now);
    for (const id of ids) await this.finalize(id, 'expired', undefined, 'timed out');
    return ids.length;
  }

  private async finalize(id: string, state: 'denied' | 'expired' | 'withdrawn', rule: ApprovalRule | undefined, why: string): Promise<void> {
    let done = false;
    let openedAt = 0;
    await this.opts.store.withLocked(id, async (a, tx) => {
      if (a.state !== 'pending') return;
      openedAt = a.createdAt.getTime();
      await this.sign(a, state, rule ?? this.opts.rule(a.request.ruleId), tx.finalize);
      done = true;
    });
    if (!done) return;
    this.opts.log.info({ requestId: id, state, why }, 'approval closed');
    this.emit('closed', id, state, (Date.now() - openedAt) / 1000);
    await this.opts.bus.publishDecided(id);
  }

  /** Builds, signs and stores the ApprovalRecord of a final state. */
  private async sign(
    a: StoredApproval,
    state: Exclude<ApprovalState, 'pending'>,
    rule: ApprovalRule | undefined,
    finalize: (state: Exclude<ApprovalState, 'pending'>, at: Date, signed: { record: Uint8Array; signature: Uint8Array; keyId: string }) => Promise<void>,
  ): Promise<void> {
    const at = new Date();
    const grant = state === 'approved' && rule?.scope === ApprovalScope.GRANT && rule.grantDuration;
    const record = toBinary(
      ApprovalRecordSchema,
      create(ApprovalRecordSchema, {
        requestId: a.id,
        agentId: a.agentId,
        sessionId: a.request.sessionId,
        statementHash: a.request.statementHash,
        ruleId: a.request.ruleId,
        bundleVersion: a.request.bundleVersion,
        ...(a.request.identity ? { requester: a.request.identity } : {}),
        outcome: OUTCOME_OF[state],
        approvers: a.votes.map((v) => ({
          identity: { subject: v.subject, issuer: v.issuer },
          decidedAt: timestampFromDate(v.decidedAt),
          comment: v.comment,
          vote: v.vote === 'approve' ? ApprovalOutcome.APPROVE : ApprovalOutcome.DENY,
        })),
        scope: rule?.scope === ApprovalScope.GRANT ? ApprovalScope.GRANT : ApprovalScope.ONCE,
        decidedAt: timestampFromDate(at),
        ...(grant ? { grantExpiresAt: timestampFromDate(new Date(at.getTime() + durationMs(rule.grantDuration!))) } : {}),
      }),
    );
    await finalize(state, at, { record, signature: this.opts.key.sign(approvalSignedBytes(record)), keyId: this.opts.key.keyId });
  }
}

/** The message that carries a final decision to the agent. */
export function decisionOf(a: StoredApproval): ApprovalDecision | undefined {
  if (a.state === 'pending' || !a.signed) return undefined;
  return {
    $typeName: 'warden.v1.ApprovalDecision',
    requestId: a.id,
    outcome: OUTCOME_OF[a.state],
    approvers: a.votes.map((v) => ({
      $typeName: 'warden.v1.Approver',
      identity: { $typeName: 'warden.v1.Principal', subject: v.subject, issuer: v.issuer, groups: [], tokenId: '' },
      decidedAt: timestampFromDate(v.decidedAt),
      comment: v.comment,
      vote: v.vote === 'approve' ? ApprovalOutcome.APPROVE : ApprovalOutcome.DENY,
    })),
    signedRecord: a.signed.record,
    signature: a.signed.signature,
    keyId: a.signed.keyId,
  };
}
