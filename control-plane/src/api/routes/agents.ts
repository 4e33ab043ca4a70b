/** Agents and their status: what they run and when they were last heard from. */
import type { FastifyInstance } from 'fastify';

export interface AgentSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  connected: boolean;
  appliedVersion?: string;
  lastSeenAt?: string;
  enrolledAt: string;
}

export interface AgentRouteOptions {
  list(): Promise<AgentSummary[]>;
}

export default async function agentRoutes(app: FastifyInstance, opts: AgentRouteOptions): Promise<void> {
  app.get(
    '/v1/agents',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['agents'],
        summary: 'Enrolled agents, whether they are connected, and the configuration version each applied',
        security: [{ bearer: [] }],
        response: {
          200: {
            type: 'object',
            properties: {
              agents: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'string' },
                    name: { type: 'string' },
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    connected: { type: 'boolean' },
                    appliedVersion: { type: 'string' },
                    lastSeenAt: { type: 'string', format: 'date-time' },
                    enrolledAt: { type: 'string', format: 'date-time' },
                  },
                  required: ['id', 'name', 'connected', 'enrolledAt'],
                },
              },
            },
          },
        },
      },
    },
    async () => ({ agents: await opts.list() }),
  );
}
