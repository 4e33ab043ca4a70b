/** The evidence report for a period, for auditors: JSON (the stable document) or the HTML rendering. */
import type { FastifyInstance } from 'fastify';
import type { EvidenceReport } from '../../evidence/report.js';
import { renderEvidenceHtml } from '../../evidence/render-html.js';

export interface EvidenceRouteOptions {
  collect(period: { from: Date; to: Date }): Promise<EvidenceReport>;
}

export default async function evidenceRoutes(app: FastifyInstance, opts: EvidenceRouteOptions): Promise<void> {
  app.get<{ Querystring: { from: string; to: string; format?: 'json' | 'html' } }>(
    '/v1/evidence',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['evidence'],
        summary: 'Evidence report for a period (schema warden.evidence/v1): identities and PHI touched, masked/unmasked values, denials, signed approvals, policy versions, audit-chain verification',
        security: [{ bearer: [] }],
        querystring: {
          type: 'object',
          properties: { from: { type: 'string', format: 'date-time' }, to: { type: 'string', format: 'date-time' }, format: { type: 'string', enum: ['json', 'html'], default: 'json' } },
          required: ['from', 'to'],
        },
        response: { 400: { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } },
      },
    },
    async (req, reply) => {
      const from = new Date(req.query.from);
      const to = new Date(req.query.to);
      if (!(from < to)) return reply.code(400).send({ error: 'bad_request', message: '"from" must be before "to"' });
      const report = await opts.collect({ from, to });
      if (req.query.format === 'html') return reply.type('text/html; charset=utf-8').send(renderEvidenceHtml(report));
      return report;
    },
  );
}
