/**
 * The control plane's HTTP API: small plugins, one per resource, typed
 * schemas on every route, OpenAPI generated from them at /openapi.json.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import peopleAuth, { type PeopleAuthOptions } from './people-auth.js';
import healthRoutes, { type HealthOptions } from './routes/health.js';
import configRoutes, { type ConfigRouteOptions } from './routes/config.js';
import agentRoutes, { type AgentRouteOptions } from './routes/agents.js';
import sessionRoutes, { type SessionRouteOptions } from './routes/sessions.js';
import auditRoutes, { type AuditRouteOptions } from './routes/audit.js';

export interface ApiOptions {
  logger?: Logger | boolean;
  people: PeopleAuthOptions;
  health: HealthOptions;
  config: ConfigRouteOptions;
  agents: AgentRouteOptions;
  /** Audited sessions (search and replay); absent when the API runs without the audit log. */
  sessions?: SessionRouteOptions;
  /** The audit chain's public key and verification. */
  audit?: AuditRouteOptions;
  /** Extra plugins (e.g. the git webhook) registered after the core routes. */
  register?: (app: FastifyInstance) => Promise<void>;
}

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  // Fastify 5 takes an existing pino logger as `loggerInstance`.
  const app: FastifyInstance = (typeof opts.logger === 'object' ? Fastify({ loggerInstance: opts.logger }) : Fastify({ logger: opts.logger ?? false })) as unknown as FastifyInstance;
  await app.register(swagger, {
    openapi: {
      info: { title: 'Warden control plane', version: '0.1.0', description: 'Agents, configuration versions and validation results' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
  });
  await app.register(peopleAuth, opts.people);
  await app.register(healthRoutes, opts.health);
  await app.register(configRoutes, opts.config);
  await app.register(agentRoutes, opts.agents);
  if (opts.sessions) await app.register(sessionRoutes, opts.sessions);
  if (opts.audit) await app.register(auditRoutes, opts.audit);
  if (opts.register) await opts.register(app);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.ready();
  return app;
}
