/** The evidence report as CSV: one file per section (RFC 4180 quoting). */
import type { EvidenceReport } from './report.js';

const cell = (v: unknown): string => {
  const s = Array.isArray(v) ? v.join('; ') : v === undefined || v === null ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

function csv(head: string[], rows: unknown[][]): string {
  return [head, ...rows].map((r) => r.map(cell).join(',')).join('\r\n') + '\r\n';
}

export function renderEvidenceCsv(r: EvidenceReport): Record<string, string> {
  const s = r.summary;
  return {
    'summary.csv': csv(
      ['metric', 'value'],
      [
        ['period_from', r.period.from], ['period_to', r.period.to], ['identities', s.identities], ['phi_identities', s.phiIdentities], ['sessions', s.sessions],
        ['statements', s.statements], ['phi_statements', s.phiStatements], ['values_returned', s.valuesReturned], ['values_masked', s.valuesMasked],
        ['values_unmasked', s.valuesUnmasked], ['denials', s.denials], ['refused_logins', s.refusedLogins], ['approvals', s.approvals.total],
        ['approvals_approved', s.approvals.approved], ['approvals_denied', s.approvals.denied], ['approval_signatures_valid', s.approvals.signaturesValid],
        ['approval_signatures_invalid', s.approvals.signaturesInvalid], ['audit_chain_ok', r.auditChain.ok], ['audit_chain_records', r.auditChain.records],
      ],
    ),
    'identities.csv': csv(
      ['subject', 'issuer', 'roles', 'sessions', 'statements', 'phi_statements', 'values_returned', 'values_masked', 'values_unmasked', 'denials', 'approved_statements', 'tables', 'phi_columns'],
      r.identities.map((i) => [i.subject, i.issuer, i.roles, i.sessions, i.statements, i.phiStatements, i.valuesReturned, i.valuesMasked, i.valuesUnmasked, i.denials, i.approvedStatements, i.tables, i.columns.filter((c) => c.phi).map((c) => c.column)]),
    ),
    'columns.csv': csv(['subject', 'column', 'phi', 'reads', 'writes'], r.identities.flatMap((i) => i.columns.map((c) => [i.subject, c.column, c.phi, c.reads, c.writes]))),
    'sessions.csv': csv(
      ['session', 'subject', 'role', 'target', 'agent', 'client', 'policy_version', 'started_at', 'ended_at', 'end_reason', 'statements', 'denials'],
      r.sessions.map((x) => [x.id, x.subject, x.role, x.target, x.agentId, x.clientAddress, x.bundleVersion, x.startedAt, x.endedAt, x.endReason, x.statements, x.denials]),
    ),
    'denials.csv': csv(['at', 'session', 'subject', 'statement', 'rules', 'message'], r.denials.map((d) => [d.at, d.sessionId, d.subject, d.statement, d.ruleIds, d.message])),
    'approvals.csv': csv(
      ['request', 'state', 'rule', 'requester', 'approvers', 'created_at', 'decided_at', 'signature'],
      r.approvals.map((a) => [a.id, a.state, a.ruleId, a.requester, a.approvers.map((v) => `${v.vote}:${v.subject}`), a.createdAt, a.decidedAt, a.signature]),
    ),
    'policy_versions.csv': csv(['version', 'author', 'message', 'committed_at', 'applied_at', 'agents'], r.policyVersions.map((p) => [p.version, p.author, p.message, p.committedAt, p.appliedAt, p.agents])),
    'access_over_time.csv': csv(['day', 'phi_statements', 'values_returned'], r.accessOverTime.map((d) => [d.day, d.phiStatements, d.valuesReturned])),
  };
}
