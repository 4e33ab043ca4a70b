/**
 * The agent's side of just-in-time approval, shared by every engine: held
 * requests waiting for the control plane, the signed decisions that release
 * or refuse them, and time-boxed grants.
 *
 * Only a decision whose Ed25519 signature verifies with a control-plane key
 * the agent trusts, and whose record names this agent, this request and the
 * exact statement hash, releases a statement. Everything else — no link, a
 * bad signature, the timeout — ends in a refusal: a held statement never
 * runs by default and never waits forever.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { create, fromBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ApprovalOutcome,
  ApprovalRecordSchema,
  ApprovalRequestSchema,
  ApprovalScope,
  approvalSignedBytes,
  type StatementKind,
  type AgentMessageSchema,
  type ApprovalDecision,
  type ApprovalRecord,
  type ApprovalRequest,
} from '../../../proto/src/index.js';
import { uuidv7 } from '../audit/uuidv7.js';

export interface ApprovalEvidence {
  requestId: string;
  signedRecord: Uint8Array;
  signature: Uint8Array;
  keyId: string;
}

export type HoldOutcome =
  | { approved: true; requestId: string; record: ApprovalRecord; evidence: ApprovalEvidence }
  | { approved: false; requestId: string; reason: string; record?: ApprovalRecord; evidence?: ApprovalEvidence };

type AgentMessageInit = MessageInitShape<typeof AgentMessageSchema>;

/** What an engine says about the statement it holds. */
export interface ApprovalAsk {
  sessionId: string;
  identity: { subject: string; issuer: string; groups: string[]; tokenId: string };
  role: string;
  target: string;
  /** As the audit record keeps it (literals replaced for PHI-restricted roles). */
  statementText: string;
  parameters: Array<{ text: string; isNull: boolean; masked: boolean }>;
  /** Binds the approval to the exact statement: see statementHash(). */
  statementHash: Uint8Array;
  statementKind: StatementKind;
  touchedColumns: string[];
  ruleId: string;
  bundleVersion: string;
}

interface Waiting {
  request: ApprovalRequest;
  resolve(outcome: HoldOutcome): void;
  timer: NodeJS.Timeout;
}

interface Grant {
  until: number;
  outcome: HoldOutcome & { approved: true };
}

export interface ApprovalBrokerOptions {
  agentId: string;
  /** Trusted approval keys: key id → DER SubjectPublicKeyInfo, base64. */
  keys(): Record<string, string>;
  /** Some control plane is configured (managed agent); without one nothing can be approved. */
  managed: boolean;
}

export class ApprovalBroker {
  private readonly waiting = new Map<string, Waiting>();
  private readonly grants = new Map<string, Grant>();
  private readonly keyCache = new Map<string, KeyObject>();
  private send: ((m: AgentMessageInit) => void) | undefined;

  constructor(private readonly opts: ApprovalBrokerOptions) {}

  get pending(): number {
    return this.waiting.size;
  }

  /** The link to the control plane is up: (re)send every request still waiting (the control plane ignores repeats). */
  attach(send: (m: AgentMessageInit) => void): void {
    this.send = send;
    for (const w of this.waiting.values()) send({ kind: { case: 'approvalRequest', value: w.request } });
  }

  detach(): void {
    this.send = undefined;
  }

  /** A standing grant for this subject, rule, target and statement fingerprint, if one is in force. */
  grant(key: string): (HoldOutcome & { approved: true }) | undefined {
    const g = this.grants.get(key);
    if (!g) return undefined;
    if (g.until > Date.now()) return g.outcome;
    this.grants.delete(key);
    return undefined;
  }

  /**
   * Sends a request and waits for its signed decision. `grantKey` names the grant an approval with
   * scope GRANT creates. The promise never rejects.
   */
  request(init: ApprovalAsk, timeoutMs: number, grantKey: string): { id: string; outcome: Promise<HoldOutcome> } {
    const id = uuidv7();
    const now = new Date();
    const request = create(ApprovalRequestSchema, {
      ...init,
      id,
      agentId: this.opts.agentId,
      requestedAt: timestampFromDate(now),
      expiresAt: timestampFromDate(new Date(now.getTime() + timeoutMs)),
    });
    if (!this.opts.managed) {
      return { id, outcome: Promise.resolve({ approved: false, requestId: id, reason: 'this statement needs approval, and this agent has no control plane to ask' }) };
    }
    const outcome = new Promise<HoldOutcome>((resolve) => {
      const timer = setTimeout(() => {
        // The control plane expires it too; the agent does not wait for that message to answer the client.
        this.finish(id, { approved: false, requestId: id, reason: `approval request ${id} timed out after ${Math.round(timeoutMs / 1000)}s without a decision` });
      }, timeoutMs);
      this.waiting.set(id, {
        request,
        timer,
        resolve: (o) => {
          if (o.approved && o.record.scope === ApprovalScope.GRANT && o.record.grantExpiresAt) {
            this.grants.set(grantKey, { until: timestampDate(o.record.grantExpiresAt).getTime(), outcome: o });
          }
          resolve(o);
        },
      });
    });
    this.send?.({ kind: { case: 'approvalRequest', value: request } });
    return { id, outcome };
  }

  /** The client cancelled or went away: stop waiting and tell the control plane. */
  withdraw(id: string, reason: string): void {
    if (!this.finish(id, { approved: false, requestId: id, reason })) return;
    this.send?.({ kind: { case: 'approvalWithdraw', value: { requestId: id, reason, withdrawnAt: timestampFromDate(new Date()) } } });
  }

  /** A decision from the control plane; anything that does not verify is ignored (the request then times out). */
  onDecision(d: ApprovalDecision): string | undefined {
    const w = this.waiting.get(d.requestId);
    if (!w) return undefined;
    const problem = this.check(d, w.request);
    if (typeof problem === 'string') return problem;
    const record = problem;
    const evidence: ApprovalEvidence = { requestId: d.requestId, signedRecord: d.signedRecord, signature: d.signature, keyId: d.keyId };
    if (record.outcome === ApprovalOutcome.APPROVE) {
      this.finish(d.requestId, { approved: true, requestId: d.requestId, record, evidence });
    } else {
      this.finish(d.requestId, { approved: false, requestId: d.requestId, reason: refusalText(record), record, evidence });
    }
    return undefined;
  }

  /** Verifies a decision against the request it answers; returns the record, or why it was refused. */
  private check(d: ApprovalDecision, req: ApprovalRequest): ApprovalRecord | string {
    const key = this.key(d.keyId);
    if (!key) return `decision ${d.requestId} is signed by unknown key ${d.keyId}`;
    if (!verify(null, approvalSignedBytes(d.signedRecord), key, d.signature)) return `decision ${d.requestId} has a bad signature`;
    let record: ApprovalRecord;
    try {
      record = fromBinary(ApprovalRecordSchema, d.signedRecord);
    } catch {
      return `decision ${d.requestId} carries an unreadable record`;
    }
    if (record.requestId !== req.id || record.agentId !== this.opts.agentId || !Buffer.from(record.statementHash).equals(Buffer.from(req.statementHash))) {
      return `decision ${d.requestId} does not match the held statement`;
    }
    return record;
  }

  private key(keyId: string): KeyObject | undefined {
    let k = this.keyCache.get(keyId);
    if (!k) {
      const der = this.opts.keys()[keyId];
      if (!der) return undefined;
      k = createPublicKey({ key: Buffer.from(der, 'base64'), format: 'der', type: 'spki' });
      this.keyCache.set(keyId, k);
    }
    return k;
  }

  private finish(id: string, outcome: HoldOutcome): boolean {
    const w = this.waiting.get(id);
    if (!w) return false;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    w.resolve(outcome);
    return true;
  }

  /** Ends every wait (agent shutdown). */
  close(reason: string): void {
    for (const id of [...this.waiting.keys()]) this.finish(id, { approved: false, requestId: id, reason });
  }
}

/** The client's message for a refused request: who decided and why, never more. */
export function refusalText(record: ApprovalRecord): string {
  const id = record.requestId;
  if (record.outcome === ApprovalOutcome.EXPIRED) return `approval request ${id} expired without enough approvals`;
  if (record.outcome === ApprovalOutcome.WITHDRAWN) return `approval request ${id} was withdrawn`;
  const denier = record.approvers.find((a) => a.vote === ApprovalOutcome.DENY);
  if (!denier) return `approval request ${id} was not approved`;
  return `approval request ${id} denied by ${denier.identity?.subject ?? 'an approver'}${denier.comment ? `: ${denier.comment}` : ''}`;
}

/**
 * SHA-256 binding an approval to one exact statement: the text and every
 * bound parameter value as the client sent them (length-prefixed, -1 for NULL).
 */
export function statementHash(text: string, params: ReadonlyArray<Buffer | null> = []): Uint8Array {
  const h = createHash('sha256').update('warden.v1.statement\0').update(text, 'utf8');
  const len = Buffer.alloc(4);
  for (const p of params) {
    len.writeInt32BE(p === null ? -1 : p.length);
    h.update(len);
    if (p) h.update(p);
  }
  return h.digest();
}
