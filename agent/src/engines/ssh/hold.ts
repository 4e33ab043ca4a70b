/**
 * Decide and hold for SSH: the role's permissions first, then the approval
 * rules (exec commands matching risk patterns, shell start for some roles).
 * While a request waits, the client's channel stays open and is told on
 * stderr which request it waits on; closing the channel withdraws it.
 */
import type { ServerChannel } from 'ssh2';
import type { ApprovalBroker } from '../../approval/broker.js';
import { holdAction, type HoldSubject } from '../../approval/hold-action.js';
import type { ProtocolApprovalRules } from '../../policy/approval-rules.js';
import { describeAction, type SshAction, type SshRolePolicy } from './decide.js';

export interface GateContext extends Omit<HoldSubject, 'broker' | 'waited'> {
  policy: SshRolePolicy;
  approvals?: { broker: ApprovalBroker; rules: ProtocolApprovalRules; waited?: HoldSubject['waited'] };
}

export interface GateResult {
  allowed: boolean;
  decision: 'allow' | 'deny' | 'approved';
  reason?: string;
  ruleIds: string[];
  approvalRequestId?: string;
}

export async function gate(ctx: GateContext, action: SshAction, channel: ServerChannel | undefined): Promise<GateResult> {
  const verdict = ctx.policy.decide(action);
  if (!verdict.allowed) return { allowed: false, decision: 'deny', reason: verdict.reason, ruleIds: [] };
  if (action.kind !== 'exec' && action.kind !== 'shell') return { allowed: true, decision: 'allow', ruleIds: [] };
  const rule = ctx.approvals?.rules.holding(ctx.role, action.kind === 'shell' ? { sshShell: true } : { sshExec: action.command }, new Date());
  if (!rule || !ctx.approvals) return { allowed: true, decision: 'allow', ruleIds: [] };

  const pending = holdAction({
    broker: ctx.approvals.broker,
    sessionId: ctx.sessionId,
    identity: ctx.identity,
    role: ctx.role,
    target: ctx.target,
    bundleVersion: ctx.bundleVersion,
    rule,
    text: describeAction(action),
    record: ctx.record,
    ...(ctx.approvals.waited ? { waited: ctx.approvals.waited } : {}),
    waiting: (id, timeoutMs) => {
      const wait = timeoutMs >= 60_000 ? `${Math.round(timeoutMs / 60_000)} min` : `${Math.round(timeoutMs / 1000)} s`;
      channel?.stderr.write(`Warden: this needs approval (rule ${rule.id}); request ${id} is waiting for ${rule.approverGroups.join(' or ')}, for up to ${wait}\r\n`);
    },
  });
  const withdraw = (): void => pending.withdraw('the client closed the channel while it waited for approval');
  channel?.once('close', withdraw);
  const v = await pending.verdict;
  channel?.off('close', withdraw);
  return v.approved
    ? { allowed: true, decision: 'approved', ruleIds: [rule.id], approvalRequestId: v.requestId }
    : { allowed: false, decision: 'deny', reason: v.reason ?? 'not approved', ruleIds: [rule.id], approvalRequestId: v.requestId };
}
