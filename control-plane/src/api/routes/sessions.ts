/** Audited sessions: search them, and read one whole (what `warden sessions` shows). Auditors only. */
import type { FastifyInstance } from 'fastify';
import { DECISIONS, type SessionFilter, type SessionQuery } from '../../audit/session-query.js';

export interface SessionRouteOptions {
  query: SessionQuery;
}

const stringList = { type: 'array', items: { type: 'string' } } as const;
const value = { type: 'object', properties: { value: { type: ['string', 'null'] }, masked: { type: 'boolean' } }, required: ['value', 'masked'] } as const;

const summary = {
  type: 'object',
  properties: {
    sessionId: { type: 'string' },
    agentId: { type: 'string' },
    subject: { type: 'string' },
    issuer: { type: 'string' },
    groups: stringList,
    role: { type: 'string' },
    target: { type: 'string' },
    clientAddress: { type: 'string' },
    startedAt: { type: 'string', format: 'date-time' },
    endedAt: { type: 'string', format: 'date-time' },
    endReason: { type: 'string' },
    statements: { type: 'integer' },
    decisions: { type: 'object', additionalProperties: { type: 'integer' } },
    tables: stringList,
    refused: { type: 'object', properties: { sqlstate: { type: 'string' }, reason: { type: 'string' } } },
  },
  required: ['sessionId', 'agentId', 'subject', 'groups', 'startedAt', 'statements', 'decisions', 'tables'],
} as const;

const statement = {
  type: 'object',
  properties: {
    sequence: { type: 'integer' },
    startedAt: { type: 'string', format: 'date-time' },
    offsetMs: { type: 'number' },
    durationMs: { type: 'number' },
    protocol: { type: 'string' },
    text: { type: 'string' },
    parameters: { type: 'array', items: value },
    decision: { type: 'string' },
    ruleIds: stringList,
    maskedColumns: stringList,
    tables: stringList,
    rowCount: { type: 'integer' },
    commandTag: { type: 'string' },
    truncated: { type: 'boolean' },
    resultSha256: { type: 'string' },
    sample: {
      type: 'object',
      properties: { columns: stringList, rows: { type: 'array', items: { type: 'array', items: value } }, truncated: { type: 'boolean' } },
    },
    error: { type: 'object', properties: { sqlstate: { type: 'string' }, message: { type: 'string' } } },
  },
} as const;

interface ListQuery {
  identity?: string;
  from?: string;
  to?: string;
  table?: string;
  decision?: (typeof DECISIONS)[number];
  limit?: number;
}

export default async function sessionRoutes(app: FastifyInstance, opts: SessionRouteOptions): Promise<void> {
  app.get<{ Querystring: ListQuery }>(
    '/v1/sessions',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['audit'],
        summary: 'Audited sessions, most recent first, filtered by identity, start time, table and decision',
        security: [{ bearer: [] }],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            identity: { type: 'string', description: 'token subject' },
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            table: { type: 'string', description: 'schema.table a statement read or wrote' },
            decision: { type: 'string', enum: [...DECISIONS] },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
        },
        response: { 200: { type: 'object', properties: { sessions: { type: 'array', items: summary } }, required: ['sessions'] } },
      },
    },
    async (req) => {
      const q = req.query;
      const filter: SessionFilter = {
        ...(q.identity !== undefined ? { subject: q.identity } : {}),
        ...(q.from !== undefined ? { from: new Date(q.from) } : {}),
        ...(q.to !== undefined ? { to: new Date(q.to) } : {}),
        ...(q.table !== undefined ? { table: q.table } : {}),
        ...(q.decision !== undefined ? { decision: q.decision } : {}),
        ...(q.limit !== undefined ? { limit: q.limit } : {}),
      };
      return { sessions: await opts.query.list(filter) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/sessions/:id',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['audit'],
        summary: 'One session as the client saw it: statements, parameters and sample rows (masked), errors, timing, SSH terminal recordings (asciicast v2)',
        security: [{ bearer: [] }],
        params: { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 64 } }, required: ['id'] },
        response: {
          200: {
            type: 'object',
            properties: {
              session: summary,
              statements: { type: 'array', items: statement },
              // SSH: each channel's terminal recording, an asciicast v2 file.
              terminals: { type: 'array', items: { type: 'object', properties: { channel: { type: 'integer' }, cast: { type: 'string' } }, required: ['channel', 'cast'] } },
            },
            required: ['session', 'statements', 'terminals'],
          },
          404: { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
    async (req, reply) => {
      const replay = await opts.query.get(req.params.id);
      if (!replay) return reply.code(404).send({ error: 'not_found', message: `no session ${req.params.id} in the audit log` });
      return replay;
    },
  );
}
