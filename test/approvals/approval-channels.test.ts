/**
 * Approval channels and scopes (see approval-stack.ts): the Slack-compatible
 * chat bot, grants and extended-protocol parameters, and the row-limit hold.
 */
import { slackSignature } from '../../control-plane/src/approvals/slack.js';
import { directClient } from '../support/agent-harness.js';
import { describe, expect, it } from 'vitest';
import { api, client, heldRequestId, person, PHI, stateOf, useApprovalStack } from './approval-stack.js';

const s = useApprovalStack();

describe('chat bot (Slack-compatible)', () => {
  const sign = (ts: number, body: string, secret = process.env.WARDEN_TEST_SLACK_SECRET!): Record<string, string> => ({
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': slackSignature(secret, String(ts), body),
  });
  const press = (id: string, user: string, action = 'warden_approve'): string =>
    new URLSearchParams({ payload: JSON.stringify({ type: 'block_actions', user: { id: user }, actions: [{ action_id: action, value: id }] }) }).toString();
  const post = (headers: Record<string, string>, body: string): Promise<Response> => fetch(`http://127.0.0.1:${s.cpB.port}/v1/hooks/slack`, { method: 'POST', headers, body });

  it('posts the request with buttons; only a fresh, correctly signed press by a mapped user decides, once', async () => {
    const c = await client('billing-bot', 'billing-team');
    const query = c.query(`UPDATE ${PHI}.billing SET status = status, insurer = insurer`);
    const id = await heldRequestId(c);
    await expect.poll(() => s.chatPosts.some((p) => JSON.stringify(p).includes(`"value":"${id}"`)), { timeout: 3000 }).toBe(true);
    const now = Math.floor(Date.now() / 1000);

    const valid = press(id, 'U_LEAD');
    expect((await post(sign(now, valid, 'a-forged-secret'), valid)).status).toBe(401);
    const old = await post(sign(now - 600, valid), valid);
    expect(old.status).toBe(401);
    expect(((await old.json()) as { message: string }).message).toMatch(/window/);
    const stranger = press(id, 'U_STRANGER');
    expect((await post(sign(now, stranger), stranger)).status).toBe(403);
    expect(await stateOf(id)).toBe('pending');

    const ok = await post(sign(now, valid), valid);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { text: string }).text).toContain('approved');
    expect((await post(sign(now, valid), valid)).status).toBe(409);
    const { json } = await api(s.cpB, 'GET', `/v1/approvals/${id}`, await person('auditor-1', ['auditors']));
    expect(json.votes).toEqual([expect.objectContaining({ subject: 'lead-1', vote: 'approve', via: 'chat' })]);
    await query;
    await c.end();
  });
});

describe('approval scope', () => {
  it('binds an approval to the exact statement and parameters; a grant covers the same shape for its duration', async () => {
    const c = await client('care-bot', 'care-coordinators');
    const sql = `SELECT id FROM ${PHI}.clinical_notes WHERE id = $1`;
    const first = c.query({ text: sql, values: [1] });
    const id = await heldRequestId(c);
    const { json } = await api(s.cpB, 'GET', `/v1/approvals/${id}`, await person('nurse-1', ['charge-nurses']));
    // Extended protocol: the hash covers the bound value; approvers see it as the session record keeps it.
    expect(json.parameters).toEqual([expect.objectContaining({ isNull: false, masked: true })]);
    const approved = await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('nurse-1', ['charge-nurses']), { decision: 'approve' });
    expect(approved.json.state).toBe('approved');
    expect((await first).rows).toEqual([{ id: '1' }]);
    c.notices.length = 0;
    // Same shape, other value: covered by the grant, no new request.
    expect((await c.query({ text: sql, values: [2] })).rows).toEqual([{ id: '2' }]);
    expect((await c.query(`SELECT id FROM ${PHI}.clinical_notes WHERE id = 3`)).rows).toEqual([{ id: '3' }]);
    expect(c.notices).toEqual([]);
    await c.end();
  });
});

describe('row limit', () => {
  it('holds a result at the role\'s row limit; approval lets the rest through, denial fails the statement', async () => {
    const d = await directClient();
    const all = (await d.query(`SELECT id, department FROM ${PHI}.encounters ORDER BY id`)).rows.map((r: { id: string; department: string }) => ({ ...r }));
    await d.end();
    expect(all.length).toBeGreaterThan(5);
    const c = await client('analytics-bot', 'ai-clinical-analytics');
    const big = c.query(`SELECT id, department FROM ${PHI}.encounters ORDER BY id`);
    const id = await heldRequestId(c);
    expect(c.notices[0]).toContain('rule bulk-export');
    await api(s.cpB, 'POST', `/v1/approvals/${id}/decision`, await person('privacy-1', ['privacy-office']), { decision: 'approve' });
    expect((await big).rows).toEqual(all);

    c.notices.length = 0;
    const refused = c.query({ text: `SELECT id FROM ${PHI}.encounters WHERE id > $1`, values: [0] }).catch((e: Error) => e);
    const id2 = await heldRequestId(c);
    await api(s.cpB, 'POST', `/v1/approvals/${id2}/decision`, await person('privacy-1', ['privacy-office']), { decision: 'deny', comment: 'use the monthly extract' });
    expect(await refused).toMatchObject({ code: '42501', message: expect.stringMatching(/5-row limit.*denied by privacy-1: use the monthly extract/) });
    // Within the limit nothing is held.
    expect((await c.query(`SELECT id FROM ${PHI}.encounters ORDER BY id LIMIT 5`)).rows).toHaveLength(5);
    await c.end();
  });
});

