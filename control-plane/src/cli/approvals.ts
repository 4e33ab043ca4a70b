/**
 * `warden approvals list|approve|deny|verify`. The first three talk to the
 * control plane's API as the person whose token is given; `verify` checks a
 * signed approval record offline, with nothing but the record and the
 * control plane's public key.
 */
import fs from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { ApprovalOutcome } from '../../../proto/src/index.js';
import { verifyApprovalRecord } from '../approvals/verify-record.js';
import { call, failed, type ApiTarget } from './api-client.js';

type Out = NodeJS.WritableStream;

interface ApprovalJson {
  id: string;
  state: string;
  ruleId: string;
  requester?: { subject?: string };
  statement: string;
  createdAt: string;
  expiresAt: string;
  votes: Array<{ subject: string; vote: string }>;
  signedRecord?: { record: string; signature: string; keyId: string };
}

export async function approvalsList(t: ApiTarget, state: string | undefined, json: boolean, out: Out): Promise<number> {
  const r = await call(t, 'GET', `/v1/approvals${state ? `?state=${encodeURIComponent(state)}` : ''}`);
  if (r.status !== 200) return failed(r, out);
  const list = r.json.approvals as ApprovalJson[];
  if (json) out.write(JSON.stringify(list, null, 2) + '\n');
  else {
    if (list.length === 0) out.write('no approval requests\n');
    for (const a of list) out.write(`${a.id}  ${a.state.padEnd(9)}  ${a.ruleId}  ${a.requester?.subject ?? '?'}  expires ${a.expiresAt}\n    ${a.statement.slice(0, 160)}\n`);
  }
  return 0;
}

export async function approvalsDecide(t: ApiTarget, id: string, decision: 'approve' | 'deny', comment: string | undefined, json: boolean, out: Out): Promise<number> {
  const r = await call(t, 'POST', `/v1/approvals/${encodeURIComponent(id)}/decision`, { decision, ...(comment ? { comment } : {}) });
  if (r.status !== 200) return failed(r, out);
  const a = r.json as unknown as ApprovalJson;
  out.write(json ? JSON.stringify(a, null, 2) + '\n' : `recorded your ${decision}; request ${a.id} is ${a.state} (${a.votes.length} vote${a.votes.length === 1 ? '' : 's'})\n`);
  return 0;
}


export interface VerifyReport {
  ok: boolean;
  requestId?: string;
  outcome?: string;
  ruleId?: string;
  requester?: string;
  approvers?: Array<{ subject: string; vote: string; decidedAt: string; comment: string }>;
  statementHash?: string;
  bundleVersion?: string;
  problem?: string;
}

/** Verifies the signed record in an approval as the API returns it (GET /v1/approvals/:id). */
export function verifyApproval(approval: ApprovalJson, publicKeyPem: string): VerifyReport {
  const s = approval.signedRecord;
  if (!s) return { ok: false, problem: `request ${approval.id} has no signed record (state ${approval.state})` };
  const check = verifyApprovalRecord(approval.id, { record: Buffer.from(s.record, 'base64'), signature: Buffer.from(s.signature, 'base64') }, createPublicKey(publicKeyPem));
  if (!check.ok) return { ok: false, requestId: approval.id, problem: check.problem };
  const r = check.record;
  return {
    ok: true,
    requestId: r.requestId,
    outcome: ApprovalOutcome[r.outcome]?.toLowerCase() ?? 'unknown',
    ruleId: r.ruleId,
    requester: r.requester?.subject ?? '',
    approvers: r.approvers.map((a) => ({
      subject: a.identity?.subject ?? '',
      vote: ApprovalOutcome[a.vote]?.toLowerCase() ?? '',
      decidedAt: a.decidedAt ? timestampDate(a.decidedAt).toISOString() : '',
      comment: a.comment,
    })),
    statementHash: Buffer.from(r.statementHash).toString('hex'),
    bundleVersion: r.bundleVersion,
  };
}

export function approvalsVerify(file: string, publicKeyFile: string, json: boolean, out: Out): number {
  const approval = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8')) as ApprovalJson;
  const report = verifyApproval(approval, fs.readFileSync(publicKeyFile, 'utf8'));
  if (json) out.write(JSON.stringify(report, null, 2) + '\n');
  else if (!report.ok) out.write(`approval record FAILED verification: ${report.problem}\n`);
  else {
    out.write(`approval record verified: request ${report.requestId} ${report.outcome} (rule ${report.ruleId}, requested by ${report.requester}, policy ${report.bundleVersion})\n`);
    for (const a of report.approvers!) out.write(`  ${a.vote.padEnd(7)} ${a.subject} at ${a.decidedAt}${a.comment ? ` — ${a.comment}` : ''}\n`);
  }
  return report.ok ? 0 : 1;
}
