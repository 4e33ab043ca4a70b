/**
 * Builds the evidence report for a period from what the control plane holds:
 * the audit chain (sessions and statements as the agents recorded them), the
 * approval requests with their signed records, the config bundles applied,
 * and the chain's own verification. PHI is judged by the classification of
 * the policy in force now (the latest applied bundle).
 */
import type { KeyObject } from 'node:crypto';
import type pg from 'pg';
import { PhiClass, type PolicyBundle } from '../../../proto/src/index.js';
import { compilePattern } from '../../../agent/src/policy/compiled-policy.js';
import { AuditChain } from '../audit/hash-chain.js';
import { ApprovalStore } from '../approvals/approval-store.js';
import { verifyApprovalRecord } from '../approvals/verify-record.js';
import { BundleStore } from '../gitops/bundle-store.js';
import { EVIDENCE_SCHEMA, type EvidenceIdentity, type EvidenceReport, type EvidenceSession } from './report.js';

export interface EvidenceSources {
  pool: pg.Pool;
  schema: string;
  publicKey: KeyObject;
  /** Called as the audit log is read: records done, records in all. */
  onProgress?: (done: number, total: number) => void;
}

/** The parts of the audit payloads (proto JSON of AuditEvent) this report reads. */
interface Payload {
  agentId?: string;
  sessionId: string;
  sessionStart?: { identity?: { subject?: string; issuer?: string }; role?: string; clientAddress?: string; agentId?: string; target?: string; bundleVersion?: string; startedAt?: string };
  statement?: {
    text?: string;
    decision?: string;
    ruleIds?: string[];
    error?: { message?: string };
    startedAt?: string;
    commandTag?: string;
    approvalRequestId?: string;
    touchedColumns?: string[];
    maskedValues?: string;
    returnedValues?: string;
  };
  sessionEnd?: { reason?: string; endedAt?: string };
  authRefused?: unknown;
}

const WRITE_TAG = /^(INSERT|UPDATE|DELETE|MERGE|COPY \d+$)/;

/** PHI classifier from a bundle's classification rules (first matching rule decides, as on agents). */
function phiClassifier(bundle: PolicyBundle | undefined): (target: string, column: string) => boolean {
  const rules = (bundle?.classifications ?? []).map((r) => ({ r, match: compilePattern(r.pattern) }));
  const cache = new Map<string, boolean>();
  return (target, column) => {
    const key = `${target}\0${column}`;
    let hit = cache.get(key);
    if (hit === undefined) {
      const rule = rules.find((x) => (x.r.targets.length === 0 || x.r.targets.includes(target)) && x.match(...column.split('.')))?.r;
      hit = rule !== undefined && rule.phiClass !== PhiClass.NONE && rule.phiClass !== PhiClass.UNSPECIFIED;
      cache.set(key, hit);
    }
    return hit;
  };
}

export async function collectEvidence(src: EvidenceSources, period: { from: Date; to: Date }): Promise<EvidenceReport> {
  const { pool, schema } = src;
  const chain = new AuditChain(pool, schema);
  const bundles = new BundleStore(pool, schema);
  const history = await bundles.history();
  const isPhi = phiClassifier(history[0]?.bundle);
  const inPeriod = (iso: string | undefined): boolean => {
    if (!iso) return false;
    const t = Date.parse(iso);
    return t >= period.from.getTime() && t < period.to.getTime();
  };

  const sessions = new Map<string, EvidenceSession & { issuer: string; inPeriod: boolean }>();
  const identities = new Map<string, EvidenceIdentity & { columnMap: Map<string, EvidenceIdentity['columns'][number]>; tableSet: Set<string>; roleSet: Set<string> }>();
  const report: EvidenceReport = {
    schema: EVIDENCE_SCHEMA,
    generatedAt: new Date().toISOString(),
    period: { from: period.from.toISOString(), to: period.to.toISOString() },
    summary: {
      identities: 0, phiIdentities: 0, sessions: 0, statements: 0, phiStatements: 0, valuesReturned: 0, valuesMasked: 0, valuesUnmasked: 0, denials: 0, refusedLogins: 0,
      approvals: { total: 0, approved: 0, denied: 0, expired: 0, withdrawn: 0, pending: 0, signaturesValid: 0, signaturesInvalid: 0 },
    },
    identities: [],
    sessions: [],
    denials: [],
    approvals: [],
    policyVersions: [],
    auditChain: { ok: false, records: 0, checkpointsVerified: 0 },
    accessOverTime: [],
  };
  const days = new Map<string, { phiStatements: number; valuesReturned: number }>();

  const identityOf = (s: { subject: string; issuer: string }): NonNullable<ReturnType<typeof identities.get>> => {
    const key = `${s.issuer}\0${s.subject}`;
    let id = identities.get(key);
    if (!id) {
      id = { subject: s.subject, issuer: s.issuer, roles: [], sessions: 0, statements: 0, phiStatements: 0, tables: [], columns: [], valuesReturned: 0, valuesMasked: 0, valuesUnmasked: 0, denials: 0, approvedStatements: 0, columnMap: new Map(), tableSet: new Set(), roleSet: new Set() };
      identities.set(key, id);
    }
    return id;
  };

  const total = await chain.size();
  let done = 0;
  for await (const batch of chain.scan(2000)) {
    for (const row of batch) {
      const p = JSON.parse(row.payload) as Payload;
      if (p.sessionStart) {
        const st = p.sessionStart;
        const s = {
          id: p.sessionId, subject: st.identity?.subject ?? '', issuer: st.identity?.issuer ?? '', role: st.role ?? '', target: st.target ?? '',
          agentId: st.agentId ?? p.agentId ?? '', clientAddress: st.clientAddress ?? '', bundleVersion: st.bundleVersion ?? '', startedAt: st.startedAt ?? '',
          statements: 0, denials: 0, inPeriod: inPeriod(st.startedAt),
        };
        sessions.set(p.sessionId, s);
        if (s.inPeriod) {
          const id = identityOf(s);
          id.sessions++;
          id.roleSet.add(s.role);
        }
      } else if (p.statement) {
        const s = sessions.get(p.sessionId);
        const st = p.statement;
        if (!s || !inPeriod(st.startedAt ?? s.startedAt)) continue;
        const id = identityOf(s);
        const touched = st.touchedColumns ?? [];
        const phi = touched.some((c) => isPhi(s.target, c));
        const returned = Number(st.returnedValues ?? 0);
        const masked = Number(st.maskedValues ?? 0);
        s.statements++;
        id.statements++;
        report.summary.statements++;
        if (phi) {
          id.phiStatements++;
          report.summary.phiStatements++;
          const day = (st.startedAt ?? s.startedAt).slice(0, 10);
          const d = days.get(day) ?? { phiStatements: 0, valuesReturned: 0 };
          d.phiStatements++;
          d.valuesReturned += returned;
          days.set(day, d);
        }
        id.valuesReturned += returned;
        id.valuesMasked += masked;
        const write = WRITE_TAG.test(st.commandTag ?? '');
        for (const c of touched) {
          const col = id.columnMap.get(c) ?? { column: c, phi: isPhi(s.target, c), reads: 0, writes: 0 };
          if (write) col.writes++;
          else col.reads++;
          id.columnMap.set(c, col);
          id.tableSet.add(c.split('.').slice(0, 2).join('.'));
        }
        if (st.approvalRequestId && st.decision === 'STATEMENT_DECISION_APPROVED') id.approvedStatements++;
        if (st.decision === 'STATEMENT_DECISION_DENY') {
          s.denials++;
          id.denials++;
          report.denials.push({ at: st.startedAt ?? '', sessionId: s.id, subject: s.subject, statement: st.text ?? '', ruleIds: st.ruleIds ?? [], message: st.error?.message ?? '' });
        }
      } else if (p.sessionEnd) {
        const s = sessions.get(p.sessionId);
        if (s) {
          s.endedAt = p.sessionEnd.endedAt ?? '';
          s.endReason = (p.sessionEnd.reason ?? '').replace('SESSION_END_REASON_', '').toLowerCase();
        }
      } else if (p.authRefused && inPeriod(row.recordedAt.toISOString())) report.summary.refusedLogins++;
    }
    done += batch.length;
    src.onProgress?.(done, total);
  }

  for (const id of identities.values()) {
    const { columnMap, tableSet, roleSet, ...rest } = id;
    const out: EvidenceIdentity = { ...rest, roles: [...roleSet].sort(), tables: [...tableSet].sort(), columns: [...columnMap.values()].sort((a, b) => a.column.localeCompare(b.column)), valuesUnmasked: id.valuesReturned - id.valuesMasked };
    report.identities.push(out);
    report.summary.valuesReturned += out.valuesReturned;
    report.summary.valuesMasked += out.valuesMasked;
  }
  report.identities.sort((a, b) => b.phiStatements - a.phiStatements || a.subject.localeCompare(b.subject));
  report.summary.valuesUnmasked = report.summary.valuesReturned - report.summary.valuesMasked;
  report.summary.identities = report.identities.length;
  report.summary.phiIdentities = report.identities.filter((i) => i.phiStatements > 0).length;
  report.sessions = [...sessions.values()].filter((s) => s.inPeriod).map(({ inPeriod: _, issuer: __, ...s }) => s);
  report.summary.sessions = report.sessions.length;
  report.summary.denials = report.denials.length;
  report.accessOverTime = [...days.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([day, d]) => ({ day, ...d }));

  const approvals = (await new ApprovalStore(pool, schema).list(undefined, 1000)).filter((a) => inPeriod(a.createdAt.toISOString()));
  for (const a of approvals) {
    const signature = a.signed ? (verifyApprovalRecord(a.id, a.signed, src.publicKey).ok ? 'valid' : 'invalid') : 'none';
    report.approvals.push({
      id: a.id, state: a.state, ruleId: a.request.ruleId, requester: a.request.identity?.subject ?? '',
      approvers: a.votes.map((v) => ({ subject: v.subject, vote: v.vote, at: v.decidedAt.toISOString(), comment: v.comment })),
      createdAt: a.createdAt.toISOString(), ...(a.decidedAt ? { decidedAt: a.decidedAt.toISOString() } : {}), signature,
    });
    const sum = report.summary.approvals;
    sum.total++;
    sum[a.state]++;
    if (signature === 'valid') sum.signaturesValid++;
    if (signature === 'invalid') sum.signaturesInvalid++;
  }

  const agentsByVersion = new Map<string, Set<string>>();
  for (const s of report.sessions) if (s.bundleVersion) (agentsByVersion.get(s.bundleVersion) ?? agentsByVersion.set(s.bundleVersion, new Set()).get(s.bundleVersion)!).add(s.agentId);
  history.forEach((h, i) => {
    const next = history[i - 1];
    const inForce = h.appliedAt.getTime() < period.to.getTime() && (!next || next.appliedAt.getTime() >= period.from.getTime());
    if (!inForce && !agentsByVersion.has(h.sha)) return;
    report.policyVersions.push({
      version: h.sha, author: `${h.commit.author.name} <${h.commit.author.email}>`, message: h.commit.message.trim(), committedAt: h.commit.committedAt.toISOString(),
      appliedAt: h.appliedAt.toISOString(), agents: [...(agentsByVersion.get(h.sha) ?? [])].sort(),
    });
  });

  const verified = await chain.verify(src.publicKey);
  const last = (await chain.checkpoints()).at(-1);
  report.auditChain = {
    ok: verified.ok, records: verified.checked, checkpointsVerified: verified.checkpointsVerified,
    ...(verified.problem ? { problem: verified.problem } : {}),
    ...(last ? { latestCheckpoint: { id: last.id, size: last.size, signedAt: last.signedAt.toISOString(), keyId: last.keyId } } : {}),
  };
  return report;
}
