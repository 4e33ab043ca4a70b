/**
 * Just-in-time approval end to end (see approval-stack.ts): a held statement
 * released by a quorum decided on the other replica, self-approval and
 * outsiders refused, denial, expiry, withdrawal on cancel or disconnect, a
 * control-plane restart while pending, and the signed record verified offline.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createPublicKey, verify } from 'node:crypto';
import { serialize } from 'pg-protocol';
import { fromBinary } from '@bufbuild/protobuf';
import { ApprovalOutcome, ApprovalRecordSchema, approvalSignedBytes } from '../../proto/src/index.js';
import { tempDir } from '../../control-plane/src/gitops/test-support.js';
import { directClient } from '../support/agent-harness.js';
import { describe, expect, it } from 'vitest';
import { api, auditEvents, client, heldRequestId, person, PHI, useApprovalStack, waitForState, warden } from './approval-stack.js';

const s = useApprovalStack();

describe('just-in-time approval', () => {
  it('holds a request for contact details until two charge nurses approve on the other replica, then returns them unmasked', async () => {
    const announcedOnB: string[] = [];
    s.cpB.approvals.on('announced', (id) => announcedOnB.push(id));
    const c = await client('care-bot', 'care-coordinators');
    const patient = s.rows.patients[2]!;
    const query = c.query(`SELECT id, first_name, phone FROM ${PHI}.patients WHERE mrn = '${patient.mrn}'`);
    let settled = false;
    void query.then(() => (settled = true), () => (settled = true));
    const id = await heldRequestId(c);
    expect(c.notices[0]).toContain('rule care-contact-unmask');
    // Replica B heard of the request through Redis, though the agent talks to replica A.
    await expect.poll(() => announcedOnB).toContain(id);

    const pending = await api(s.cpB, 'GET', '/v1/approvals?state=pending', await person('nurse-1', ['charge-nurses']));
    const listed = (pending.json.approvals as Array<Record<string, unknown>>).find((a) => a.id === id)!;
    expect(listed).toMatchObject({ ruleId: 'care-contact-unmask', requester: { subject: 'care-bot' }, role: 'care-coordination', target: 'clinical' });
    expect(listed.touchedColumns).toContain(`${PHI}.patients.phone`);
    // PHI a client typed stays out of what approvers see: the statement's shape only.
    expect(listed.statement).not.toContain(patient.mrn);

    // The requester may not approve itself, and someone outside the rule's groups may not decide.
    const self = await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('care-bot', ['charge-nurses']), { decision: 'approve' });
    expect(self.status).toBe(403);
    expect(self.json.message).toMatch(/separation of duties/);
    const outsider = await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('lead-9', ['billing-leads']), { decision: 'approve' });
    expect(outsider.status).toBe(403);
    const noCapability = await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('auditor-1', ['auditors']), { decision: 'approve' });
    expect(noCapability.status).toBe(403);

    const first = await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    expect(first).toMatchObject({ status: 200, json: { state: 'pending' } });
    const again = await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    expect(again.status).toBe(409);
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);

    const t0 = performance.now();
    const second = await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-2', ['charge-nurses']), { decision: 'approve', comment: 'discharge call' });
    expect(second.json.state).toBe('approved');
    const result = await query;
    const latency = performance.now() - t0;
    console.log(`approval decision (replica B) → rows at the client (agent on replica A): ${latency.toFixed(1)} ms`);
    expect(result.rows).toEqual([{ id: String(patient.id), first_name: patient.first_name, phone: patient.phone }]);
    await c.end();

    // The signed record verifies with the published key and names both approvers.
    const keys = (await (await fetch(`http://127.0.0.1:${s.cpA.port}/v1/keys`)).json()) as { keys: Array<{ keyId: string; publicKeyPem: string }> };
    const signed = second.json.signedRecord as { record: string; signature: string; keyId: string };
    const pem = keys.keys.find((k) => k.keyId === signed.keyId)!.publicKeyPem;
    const recordBytes = Buffer.from(signed.record, 'base64');
    expect(verify(null, approvalSignedBytes(recordBytes), createPublicKey(pem), Buffer.from(signed.signature, 'base64'))).toBe(true);
    const record = fromBinary(ApprovalRecordSchema, recordBytes);
    expect(record).toMatchObject({ requestId: id, outcome: ApprovalOutcome.APPROVE, ruleId: 'care-contact-unmask', bundleVersion: s.cpA.watcher.current!.sha });
    expect(record.approvers.map((a) => a.identity?.subject)).toEqual(['nurse-1', 'nurse-2']);
    // Offline, with the CLI: the record as the API returned it verifies; one changed byte does not.
    const dir = await tempDir('warden-appr-verify-');
    fs.writeFileSync(path.join(dir, 'cp.pem'), pem);
    fs.writeFileSync(path.join(dir, 'approval.json'), JSON.stringify(second.json));
    const ok = await warden(['approvals', 'verify', path.join(dir, 'approval.json'), '--public-key', path.join(dir, 'cp.pem')]);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringContaining(`request ${id} approve`) });
    expect(ok.stdout).toContain('nurse-2');
    recordBytes[recordBytes.length - 1] = recordBytes[recordBytes.length - 1]! ^ 1;
    fs.writeFileSync(path.join(dir, 'approval.json'), JSON.stringify({ ...second.json, signedRecord: { ...signed, record: recordBytes.toString('base64') } }));
    const bad = await warden(['approvals', 'verify', path.join(dir, 'approval.json'), '--public-key', path.join(dir, 'cp.pem'), '--json']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problem: expect.stringMatching(/signature does not verify/) });

    // The session's audit trail holds the statement (approved, with the request id) and the signed evidence.
    await expect.poll(async () => JSON.stringify(await auditEvents()), { timeout: 5000 }).toContain(id);
    const events = await auditEvents();
    expect(events.some((e) => e.approval?.requestId === id)).toBe(true);
    expect(events.some((e) => e.statement?.approvalRequestId === id && e.statement?.decision === 'STATEMENT_DECISION_APPROVED')).toBe(true);
  });

  it('denies with the approver\'s comment, and the statement never runs', async () => {
    const c = await client('billing-bot', 'billing-team');
    const query = c.query(`UPDATE ${PHI}.billing SET insurer = 'self-pay'`).catch((e: Error) => e);
    const id = await heldRequestId(c);
    // An approver uses the CLI.
    process.env.WARDEN_TEST_LEAD_TOKEN = await person('lead-1', ['billing-leads']);
    const apiFlags = ['--api', `http://127.0.0.1:${s.cpA.port}`, '--token', 'env:WARDEN_TEST_LEAD_TOKEN'];
    const listed = await warden(['approvals', 'list', '--state', 'pending', ...apiFlags]);
    expect(listed).toMatchObject({ code: 0, stdout: expect.stringContaining(id) });
    const denied = await warden(['approvals', 'deny', id, '--comment', 'not during month-end close', ...apiFlags]);
    expect(denied).toMatchObject({ code: 0, stdout: expect.stringContaining(`request ${id} is denied`) });
    expect(await query).toMatchObject({ code: '42501', message: expect.stringMatching(/denied by lead-1: not during month-end close/) });
    // The replica that closed it counted how long it waited.
    const metrics = await (await fetch(`http://127.0.0.1:${s.cpA.port}/metrics`)).text();
    expect(Number(/^warden_approval_wait_seconds_count (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    const d = await directClient();
    expect((await d.query(`SELECT count(*)::int AS n FROM ${PHI}.billing WHERE insurer = 'self-pay'`)).rows[0].n).toBe(0);
    await d.end();
    // The connection is still usable afterwards.
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await c.end();
  });

  it('expires a request nobody decides, with a clear error', async () => {
    const c = await client('billing-bot', 'billing-team');
    const t0 = performance.now();
    const err = await c.query(`UPDATE ${PHI}.billing SET insurer = 'nobody-decided'`).catch((e: Error & { code?: string }) => e);
    expect(err).toMatchObject({ code: '42501', message: expect.stringMatching(/expired|timed out/) });
    expect(performance.now() - t0).toBeGreaterThan(3500);
    await c.end();
  });

  it('withdraws the request when the client cancels, or disconnects, while held', async () => {
    const c = await client('care-bot', 'care-coordinators');
    const query = c.query(`SELECT phone FROM ${PHI}.patients WHERE id = 1`);
    const id = await heldRequestId(c);
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolve) => {
      const socket = net.connect(s.agentPort, '127.0.0.1', () => socket.end(serialize.cancel(processID, secretKey)));
      socket.on('close', () => resolve());
    });
    await expect(query).rejects.toMatchObject({ code: '57014' });
    await waitForState(id, 'withdrawn');
    await c.end();

    const gone = await client('care-bot', 'care-coordinators');
    void gone.query(`SELECT phone FROM ${PHI}.patients WHERE id = 2`).catch(() => undefined);
    const id2 = await heldRequestId(gone);
    (gone as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy();
    await waitForState(id2, 'withdrawn');
  });

  it('keeps a pending request across a control-plane restart: the agent resends it and the decision still reaches the client', async () => {
    const c = await client('care-bot', 'care-coordinators');
    const query = c.query(`SELECT email FROM ${PHI}.patients WHERE id = 4`);
    const id = await heldRequestId(c);
    await s.restartA();
    for (let i = 0; i < 100 && !s.cpA.distribution.connected.includes(s.agent.agentId); i++) await new Promise((r) => setTimeout(r, 50));
    expect(s.cpA.distribution.connected).toContain(s.agent.agentId);
    await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-3', ['charge-nurses']), { decision: 'approve' });
    expect((await query).rows).toEqual([{ email: s.rows.patients.find((p) => p.id === 4)!.email }]);
    await c.end();
  });
});

