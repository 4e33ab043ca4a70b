/**
 * Enrollment tokens for new agents, issued to admins. The plaintext token is
 * in this one response only (the control plane keeps its hash); one-time by
 * default, reusable on request, always expiring.
 */
import type { FastifyInstance } from 'fastify';

export interface EnrollmentTokenRouteOptions {
  create(opts: { ttlMs: number; reusable: boolean; labels: Record<string, string> }): Promise<string>;
}

const MAX_TTL_SECONDS = 30 * 86_400;
const FIELDS = ['ttlSeconds', 'reusable', 'labels'];

interface Body {
  ttlSeconds?: number;
  reusable?: boolean;
  labels?: Record<string, string>;
}

export default async function enrollmentTokenRoutes(app: FastifyInstance, opts: EnrollmentTokenRouteOptions): Promise<void> {
  app.post<{ Body: Body }>(
    '/v1/enrollment-tokens',
    {
      onRequest: app.requireCapability('admin'),
      // Fastify's validator drops unknown fields silently; a typo such as "ttl" must not quietly yield a one-hour token.
      preValidation: async (req, reply) => {
        const unknown = Object.keys((req.body ?? {}) as object).filter((k) => !FIELDS.includes(k));
        if (unknown.length > 0) return reply.code(400).send({ error: 'bad_request', message: `unknown field(s): ${unknown.join(', ')} (allowed: ${FIELDS.join(', ')})` });
      },
      schema: {
        tags: ['agents'],
        summary: 'Issue a token an agent enrolls with (shown once; stored only as a hash)',
        security: [{ bearer: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ttlSeconds: { type: 'integer', minimum: 1, maximum: MAX_TTL_SECONDS, default: 3600, description: 'validity; default one hour' },
            reusable: { type: 'boolean', default: false, description: 'one-time unless set (e.g. for an autoscaling group)' },
            labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 256 }, maxProperties: 32, description: 'labels the enrolled agent gets' },
          },
        },
        response: {
          201: {
            type: 'object',
            properties: { token: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' }, reusable: { type: 'boolean' } },
            required: ['token', 'expiresAt', 'reusable'],
          },
        },
      },
    },
    async (req, reply) => {
      const ttlMs = (req.body.ttlSeconds ?? 3600) * 1000;
      const reusable = req.body.reusable ?? false;
      const labels = req.body.labels ?? {};
      const token = await opts.create({ ttlMs, reusable, labels });
      // Who issued what, never the token itself.
      req.log.info({ by: req.principal?.identity.subject, reusable, ttlSeconds: ttlMs / 1000, labels }, 'enrollment token issued');
      return reply.code(201).send({ token, expiresAt: new Date(Date.now() + ttlMs).toISOString(), reusable });
    },
  );
}
