/**
 * The evidence report's stable, machine-readable shape (schema
 * "warden.evidence/v1"): what HIPAA auditors ask — who touched PHI, what
 * they saw masked and unmasked, what was refused, what was approved and
 * whether the approvals' signatures hold, which policy was in force on which
 * agents, and whether the audit chain itself verifies. HTML and CSV are
 * renderings of exactly this document.
 */

export const EVIDENCE_SCHEMA = 'warden.evidence/v1';

export interface EvidenceColumn {
  column: string;
  /** Classified as PHI by the policy in force. */
  phi: boolean;
  reads: number;
  writes: number;
}

export interface EvidenceIdentity {
  subject: string;
  issuer: string;
  roles: string[];
  sessions: number;
  statements: number;
  phiStatements: number;
  tables: string[];
  columns: EvidenceColumn[];
  valuesReturned: number;
  valuesMasked: number;
  valuesUnmasked: number;
  denials: number;
  approvedStatements: number;
}

export interface EvidenceSession {
  id: string;
  subject: string;
  role: string;
  target: string;
  agentId: string;
  clientAddress: string;
  bundleVersion: string;
  startedAt: string;
  endedAt?: string;
  endReason?: string;
  statements: number;
  denials: number;
}

export interface EvidenceDenial {
  at: string;
  sessionId: string;
  subject: string;
  statement: string;
  ruleIds: string[];
  message: string;
}

export interface EvidenceApproval {
  id: string;
  state: string;
  ruleId: string;
  requester: string;
  approvers: Array<{ subject: string; vote: string; at: string; comment: string }>;
  createdAt: string;
  decidedAt?: string;
  /** Ed25519 signature of the decision record, checked with the control plane's public key. */
  signature: 'valid' | 'invalid' | 'none';
}

export interface EvidencePolicyVersion {
  version: string;
  author: string;
  message: string;
  committedAt: string;
  appliedAt?: string;
  /** Agents seen enforcing it (sessions recorded under it, or acknowledged). */
  agents: string[];
}

export interface EvidenceChain {
  ok: boolean;
  records: number;
  checkpointsVerified: number;
  problem?: { kind: string; seq: number; detail: string };
  latestCheckpoint?: { id: number; size: number; signedAt: string; keyId: string };
}

export interface EvidenceReport {
  schema: typeof EVIDENCE_SCHEMA;
  generatedAt: string;
  period: { from: string; to: string };
  summary: {
    identities: number;
    phiIdentities: number;
    sessions: number;
    statements: number;
    phiStatements: number;
    valuesReturned: number;
    valuesMasked: number;
    valuesUnmasked: number;
    denials: number;
    refusedLogins: number;
    approvals: { total: number; approved: number; denied: number; expired: number; withdrawn: number; pending: number; signaturesValid: number; signaturesInvalid: number };
  };
  identities: EvidenceIdentity[];
  sessions: EvidenceSession[];
  denials: EvidenceDenial[];
  approvals: EvidenceApproval[];
  policyVersions: EvidencePolicyVersion[];
  auditChain: EvidenceChain;
  /** PHI statements and values returned per UTC day. */
  accessOverTime: Array<{ day: string; phiStatements: number; valuesReturned: number }>;
}
