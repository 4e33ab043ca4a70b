/** Liveness and readiness for orchestrators: ready once a good bundle is being served. */
import type { FastifyInstance } from 'fastify';

export interface HealthOptions {
  ready(): boolean;
}

export default async function healthRoutes(app: FastifyInstance, opts: HealthOptions): Promise<void> {
  const status = { type: 'object', properties: { status: { type: 'string' } }, required: ['status'] } as const;
  app.get('/healthz', { schema: { tags: ['health'], response: { 200: status } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { tags: ['health'], response: { 200: status, 503: status } } }, async (_req, reply) =>
    opts.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'no valid configuration yet' }),
  );
}
