/**
 * Push webhooks from GitHub and GitLab, so a merged change reaches agents
 * in milliseconds instead of at the next poll. The hook only says "look
 * now": the watcher still fetches and compiles from the repository itself,
 * so nothing in a delivery (not even its commit SHA) is trusted as config.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { RepoWatcher } from './watcher.js';

export interface GitWebhookOptions {
  /** GitHub: the webhook secret (HMAC key). GitLab: the secret token. */
  secret: string;
  /** Pushes to refs/heads/<branch> trigger a run; anything else is acknowledged and ignored. */
  branch: string;
  watcher: Pick<RepoWatcher, 'triggerNow'>;
  /** GitHub caps payloads at 25 MB; a push of many commits can exceed fastify's 1 MiB default. */
  bodyLimit?: number;
}

export const GIT_HOOK_PATH = '/v1/hooks/git';

/** The few fields read from either provider's push payload; everything else passes through unvalidated. */
export interface PushPayload {
  ref?: string;
  after?: string;
  zen?: string;
  object_kind?: string;
}

export interface HookReply {
  triggered: boolean;
  ref?: string;
  after?: string;
  reason?: string;
}

type Provider = 'github' | 'gitlab';

const bodySchema = {
  type: 'object',
  properties: {
    ref: { type: 'string', maxLength: 1024 },
    after: { type: 'string', maxLength: 128 },
    zen: { type: 'string' },
    object_kind: { type: 'string' },
  },
  additionalProperties: true,
} as const;

const headersSchema = {
  type: 'object',
  properties: {
    'x-hub-signature-256': { type: 'string' },
    'x-github-event': { type: 'string' },
    'x-github-delivery': { type: 'string' },
    'x-gitlab-token': { type: 'string' },
    'x-gitlab-event': { type: 'string' },
  },
} as const;

const replySchema = {
  type: 'object',
  required: ['triggered'],
  properties: {
    triggered: { type: 'boolean' },
    ref: { type: 'string' },
    after: { type: 'string' },
    reason: { type: 'string' },
  },
} as const;

const GITHUB_SIGNATURE = /^sha256=([0-9a-f]{64})$/i;

function single(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Which provider vouched for this delivery, or why none did. Runs over the exact bytes received. */
export function authenticate(
  headers: FastifyRequest['headers'],
  raw: Buffer,
  secret: string,
): { ok: true; provider: Provider } | { ok: false; reason: string } {
  const signature = headers['x-hub-signature-256'];
  if (signature !== undefined) {
    const match = GITHUB_SIGNATURE.exec(single(signature) ?? '');
    if (!match) return { ok: false, reason: 'malformed signature' };
    const expected = createHmac('sha256', secret).update(raw).digest();
    // Both sides are 32 bytes here, which timingSafeEqual requires.
    const given = Buffer.from(match[1]!, 'hex');
    return timingSafeEqual(given, expected) ? { ok: true, provider: 'github' } : { ok: false, reason: 'bad signature' };
  }
  const token = headers['x-gitlab-token'];
  if (token !== undefined) {
    // Hashing first makes the comparison constant-time whatever the token's length.
    const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
    return timingSafeEqual(digest(single(token) ?? ''), digest(secret))
      ? { ok: true, provider: 'gitlab' }
      : { ok: false, reason: 'bad token' };
  }
  return { ok: false, reason: 'missing signature' };
}

/** JSON, or GitHub's optional form encoding (payload=<json>). */
function parsePayload(raw: Buffer, contentType: string | undefined): unknown {
  const text = raw.toString('utf8');
  if ((contentType ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new Error('form body has no payload field');
    return JSON.parse(payload);
  }
  return JSON.parse(text);
}

export const gitWebhook: FastifyPluginAsync<GitWebhookOptions> = async (app, opts) => {
  if (!opts.secret) throw new Error('git webhook: an empty secret would let anyone trigger runs');
  const expectedRef = `refs/heads/${opts.branch}`;
  const provider = new WeakMap<FastifyRequest, Provider>();

  // This plugin is encapsulated, so replacing the parsers only affects this route: the
  // HMAC must be computed over the bytes as sent, before any JSON parsing re-serialises them.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: opts.bodyLimit ?? 5 * 1024 * 1024 }, (_req, body, done) => {
    done(null, body);
  });

  app.post<{ Body: PushPayload; Reply: HookReply }>(
    GIT_HOOK_PATH,
    {
      schema: {
        body: bodySchema,
        headers: headersSchema,
        response: { 200: replySchema, 202: replySchema, 401: replySchema },
      },
      // Authenticate before the body is parsed or validated: an unsigned request
      // gets 401 whatever it contains, never a 400 that describes our schema.
      preValidation: async (req: FastifyRequest, reply: FastifyReply) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const auth = authenticate(req.headers, raw, opts.secret);
        if (!auth.ok) {
          req.log.warn({ reason: auth.reason }, 'git webhook rejected');
          return reply.code(401).send({ triggered: false, reason: auth.reason });
        }
        try {
          req.body = parsePayload(raw, single(req.headers['content-type']));
        } catch {
          return reply.code(400).send({ triggered: false, reason: 'body is not a JSON payload' });
        }
        provider.set(req, auth.provider);
        return undefined;
      },
    },
    async (req, reply) => {
      const from = provider.get(req);
      const event = single(from === 'github' ? req.headers['x-github-event'] : req.headers['x-gitlab-event']) ?? '';
      const isPush = from === 'github' ? event === 'push' : event === 'Push Hook';
      if (from === 'github' && event === 'ping') return reply.code(200).send({ triggered: false, reason: 'ping' });
      if (!isPush) return reply.code(202).send({ triggered: false, reason: `ignored event ${JSON.stringify(event)}` });

      const ref = req.body.ref ?? '';
      if (ref !== expectedRef) {
        return reply.code(202).send({ triggered: false, ref, reason: `not the watched branch (${expectedRef})` });
      }
      // Not awaited: a remote fetch plus compile can outlast the provider's delivery
      // timeout (10 s on GitHub), and the sender cannot act on the outcome anyway. The
      // result is visible in the watcher's state and events, and in the logs.
      void opts.watcher.triggerNow().then(
        (result) => req.log.info({ result: result.status, sha: 'sha' in result ? result.sha : undefined }, 'git webhook run finished'),
        (err: unknown) => req.log.error({ err }, 'git webhook run failed'),
      );
      const after = req.body.after;
      req.log.info({ provider: from, ref, after, delivery: single(req.headers['x-github-delivery']) }, 'git webhook: push to the watched branch');
      return reply.code(202).send({ triggered: true, ref, ...(after !== undefined ? { after } : {}) });
    },
  );
};
