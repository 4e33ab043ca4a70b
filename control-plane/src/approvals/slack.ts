/**
 * The chat bot, compatible with Slack's incoming webhooks and interactive
 * messages: each new request is posted with Approve / Deny buttons; a
 * button press comes back to POST /v1/hooks/slack, signed with the app's
 * signing secret. A callback counts only if its signature verifies, its
 * timestamp is within five minutes, it was not seen before (on any
 * replica), and the chat user maps to an identity in config.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ApprovalService, Approver } from './approval-service.js';
import { VoteRefused } from './approval-service.js';
import type { ApprovalBus } from './approval-bus.js';
import type { StoredApproval } from './approval-store.js';

export interface SlackConfig {
  /** Incoming-webhook URL the bot posts requests to. */
  webhookUrl: string;
  /** The Slack app's signing secret. */
  signingSecret: string;
  /** Chat user id → the IdP identity that votes. */
  users: Record<string, Approver>;
}

/** Slack's own tolerance for request timestamps. */
const WINDOW_SECONDS = 300;

export function slackSignature(secret: string, timestamp: string, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

function requestMessage(a: StoredApproval, apiBase: string | undefined): Record<string, unknown> {
  const r = a.request;
  const who = r.identity?.subject ?? 'unknown';
  const text = `Approval needed (rule ${r.ruleId}): ${who} as ${r.role} on ${r.target}`;
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${text}*\n\`\`\`${r.statementText.slice(0, 2500)}\`\`\`` } },
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: `request ${a.id} · columns ${r.touchedColumns.join(', ') || 'none'} · expires ${a.expiresAt.toISOString()}${apiBase ? ` · ${apiBase}/v1/approvals/${a.id}` : ''}` }],
      },
      {
        type: 'actions',
        block_id: `warden-approval-${a.id}`,
        elements: [
          { type: 'button', action_id: 'warden_approve', style: 'primary', text: { type: 'plain_text', text: 'Approve' }, value: a.id },
          { type: 'button', action_id: 'warden_deny', style: 'danger', text: { type: 'plain_text', text: 'Deny' }, value: a.id },
        ],
      },
    ],
  };
}

/** Posts every new request to the webhook, and every outcome as a follow-up. Failures are logged, never fatal: the API still works. */
export function startSlackNotifier(service: ApprovalService, cfg: SlackConfig, log: Logger, apiBase?: string): void {
  const post = async (body: Record<string, unknown>): Promise<void> => {
    const res = await fetch(cfg.webhookUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`webhook answered ${res.status}`);
  };
  service.on('created', (a) => void post(requestMessage(a, apiBase)).catch((err: unknown) => log.error({ err: (err as Error).message, requestId: a.id }, 'could not post the approval request to chat')));
  service.on('decided', (a) => {
    const by = a.votes.map((v) => `${v.subject} (${v.vote})`).join(', ') || 'nobody';
    void post({ text: `Request ${a.id} is ${a.state}: ${by}` }).catch(() => undefined);
  });
}

interface Interaction {
  type?: string;
  user?: { id?: string };
  actions?: Array<{ action_id?: string; value?: string }>;
}

export async function slackRoutes(app: FastifyInstance, opts: { cfg: SlackConfig; service: ApprovalService; bus: ApprovalBus; log: Logger }): Promise<void> {
  // The signature covers the raw body: keep it as sent.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_req, body, done) => done(null, body));
  app.post<{ Body: string; Headers: { 'x-slack-signature'?: string; 'x-slack-request-timestamp'?: string } }>(
    '/v1/hooks/slack',
    {
      schema: {
        tags: ['approvals'],
        summary: 'Slack interactive-message callback (Approve / Deny buttons); authenticated by the Slack signing secret',
        headers: { type: 'object', properties: { 'x-slack-signature': { type: 'string' }, 'x-slack-request-timestamp': { type: 'string' } } },
        response: { '2xx': { type: 'object', properties: { text: { type: 'string' }, response_type: { type: 'string' }, replace_original: { type: 'boolean' } } }, '4xx': { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } },
      },
    },
    async (req, reply) => {
      const raw = typeof req.body === 'string' ? req.body : '';
      const ts = req.headers['x-slack-request-timestamp'] ?? '';
      const given = req.headers['x-slack-signature'] ?? '';
      const expected = slackSignature(opts.cfg.signingSecret, ts, raw);
      if (given.length !== expected.length || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
        return reply.code(401).send({ error: 'bad_signature', message: 'the Slack signature does not verify' });
      }
      if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > WINDOW_SECONDS) {
        return reply.code(401).send({ error: 'stale', message: `the request timestamp is outside the ${WINDOW_SECONDS}s window (replayed?)` });
      }
      if (!(await opts.bus.firstSeen(`slack:${given}`, 2 * WINDOW_SECONDS))) {
        return reply.code(409).send({ error: 'replayed', message: 'this callback was already received' });
      }
      let payload: Interaction;
      try {
        payload = JSON.parse(new URLSearchParams(raw).get('payload') ?? '') as Interaction;
      } catch {
        return reply.code(400).send({ error: 'bad_request', message: 'expected a form field "payload" holding JSON' });
      }
      const action = payload.actions?.[0];
      const vote = action?.action_id === 'warden_approve' ? 'approve' : action?.action_id === 'warden_deny' ? 'deny' : undefined;
      if (payload.type !== 'block_actions' || !vote || !action?.value) return reply.code(400).send({ error: 'bad_request', message: 'not a Warden approval button' });
      const who = payload.user?.id ? opts.cfg.users[payload.user.id] : undefined;
      if (!who) {
        opts.log.warn({ chatUser: payload.user?.id }, 'approval button pressed by a chat user with no identity mapping');
        return reply.code(403).send({ error: 'unknown_user', message: `chat user ${payload.user?.id ?? '?'} is not mapped to an identity` });
      }
      try {
        const a = await opts.service.vote(action.value, who, vote, '', 'chat');
        return { response_type: 'ephemeral', replace_original: false, text: `Recorded: ${who.subject} voted ${vote}; request ${a.id} is ${a.state}` };
      } catch (err) {
        if (err instanceof VoteRefused) return reply.code(err.status).send({ error: 'refused', message: err.message });
        throw err;
      }
    },
  );
}
