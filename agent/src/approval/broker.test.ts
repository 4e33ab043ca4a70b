/**
 * The agent releases a held statement only on a decision signed by a
 * trusted key, for this agent, this request and this exact statement.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { ApprovalOutcome, ApprovalRecordSchema, ApprovalScope, StatementKind, approvalSignedBytes, type ApprovalDecision } from '../../../proto/src/index.js';
import { ApprovalBroker, statementHash } from './broker.js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';

const trusted = generateKeyPairSync('ed25519');
const rogue = generateKeyPairSync('ed25519');
const spki = (k: KeyObject): string => k.export({ type: 'spki', format: 'der' }).toString('base64');

function broker(): { b: ApprovalBroker; sent: string[] } {
  const b = new ApprovalBroker({ agentId: 'agent-1', managed: true, keys: () => ({ k1: spki(trusted.publicKey) }) });
  const sent: string[] = [];
  b.attach((m) => sent.push(m.kind?.case ?? ''));
  return { b, sent };
}

function ask(hash: Uint8Array) {
  return {
    sessionId: 's1',
    identity: { subject: 'bot', issuer: 'https://idp', groups: [], tokenId: '' },
    role: 'r',
    target: 't',
    statementText: 'SELECT 1',
    parameters: [],
    statementHash: hash,
    statementKind: StatementKind.SELECT,
    touchedColumns: [],
    ruleId: 'rule-1',
    bundleVersion: 'v1',
  };
}

function decision(requestId: string, patch: { agentId?: string; hash?: Uint8Array; outcome?: ApprovalOutcome; key?: KeyObject; keyId?: string; grantMs?: number }): ApprovalDecision {
  const record = toBinary(
    ApprovalRecordSchema,
    create(ApprovalRecordSchema, {
      requestId,
      agentId: patch.agentId ?? 'agent-1',
      statementHash: patch.hash ?? statementHash('SELECT 1'),
      outcome: patch.outcome ?? ApprovalOutcome.APPROVE,
      scope: patch.grantMs ? ApprovalScope.GRANT : ApprovalScope.ONCE,
      ...(patch.grantMs ? { grantExpiresAt: timestampFromDate(new Date(Date.now() + patch.grantMs)) } : {}),
      approvers: [{ identity: { subject: 'nurse' }, vote: patch.outcome ?? ApprovalOutcome.APPROVE, comment: 'no' }],
    }),
  );
  return {
    $typeName: 'warden.v1.ApprovalDecision',
    requestId,
    outcome: patch.outcome ?? ApprovalOutcome.APPROVE,
    approvers: [],
    signedRecord: record,
    signature: sign(null, approvalSignedBytes(record), (patch.key ?? trusted.privateKey)),
    keyId: patch.keyId ?? 'k1',
  };
}

describe('approval broker', () => {
  it('sends the request and releases the statement on a valid signed approval', async () => {
    const { b, sent } = broker();
    const { id, outcome } = b.request(ask(statementHash('SELECT 1')), 5000, 'g');
    expect(sent).toEqual(['approvalRequest']);
    expect(b.onDecision(decision(id, {}))).toBeUndefined();
    await expect(outcome).resolves.toMatchObject({ approved: true, requestId: id });
  });

  it('ignores decisions with a rogue key, an unknown key, another agent or another statement', async () => {
    const { b } = broker();
    const { id, outcome } = b.request(ask(statementHash('SELECT 1')), 300, 'g');
    expect(b.onDecision(decision(id, { key: rogue.privateKey }))).toMatch(/bad signature/);
    expect(b.onDecision(decision(id, { keyId: 'k9' }))).toMatch(/unknown key/);
    expect(b.onDecision(decision(id, { agentId: 'agent-2' }))).toMatch(/does not match/);
    expect(b.onDecision(decision(id, { hash: statementHash('SELECT 1', [Buffer.from('x')]) }))).toMatch(/does not match/);
    await expect(outcome).resolves.toMatchObject({ approved: false, reason: expect.stringMatching(/timed out/) });
  });

  it('reports who denied and why; refuses at once without a control plane', async () => {
    const { b } = broker();
    const { id, outcome } = b.request(ask(statementHash('SELECT 1')), 5000, 'g');
    b.onDecision(decision(id, { outcome: ApprovalOutcome.DENY }));
    await expect(outcome).resolves.toMatchObject({ approved: false, reason: `approval request ${id} denied by nurse: no` });
    const alone = new ApprovalBroker({ agentId: 'a', managed: false, keys: () => ({}) });
    await expect(alone.request(ask(new Uint8Array(32)), 5000, 'g').outcome).resolves.toMatchObject({ approved: false, reason: expect.stringMatching(/no control plane/) });
  });

  it('keeps a grant until it expires; a once-approval leaves none', async () => {
    const { b } = broker();
    const once = b.request(ask(statementHash('SELECT 1')), 5000, 'once');
    b.onDecision(decision(once.id, {}));
    await once.outcome;
    expect(b.grant('once')).toBeUndefined();
    const granted = b.request(ask(statementHash('SELECT 1')), 5000, 'grant');
    b.onDecision(decision(granted.id, { grantMs: 60_000 }));
    await granted.outcome;
    expect(b.grant('grant')).toMatchObject({ approved: true, requestId: granted.id });
  });

  it('hashes text and each parameter unambiguously', () => {
    const h = (t: string, p: Array<Buffer | null>): string => Buffer.from(statementHash(t, p)).toString('hex');
    expect(h('a', [Buffer.from('bc')])).not.toBe(h('a', [Buffer.from('b'), Buffer.from('c')]));
    expect(h('a', [null])).not.toBe(h('a', [Buffer.alloc(0)]));
  });
});
