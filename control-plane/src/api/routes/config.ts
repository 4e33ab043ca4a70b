/**
 * Config versions: the bundle in force (commit, author, message, time) and
 * the latest validation attempt with its diagnostics, so a failed commit is
 * visible to the people who made it.
 */
import type { FastifyInstance } from 'fastify';
import type { AppliedBundle, Attempt } from '../../gitops/index.js';

export interface ConfigRouteOptions {
  current(): AppliedBundle<unknown> | undefined;
  lastAttempt(): Attempt | undefined;
  /** Every version applied, newest first (absent: only the current one is known). */
  history?(): Promise<Array<AppliedBundle<unknown>>>;
}

function versionView(c: AppliedBundle<unknown>): Record<string, unknown> {
  return {
    version: c.sha,
    author: { name: c.commit.author.name, email: c.commit.author.email },
    committer: { name: c.commit.committer.name, email: c.commit.committer.email },
    message: c.commit.message,
    committedAt: c.commit.committedAt.toISOString(),
    appliedAt: c.appliedAt.toISOString(),
    warnings: c.diagnostics,
  };
}

const diagnostic = {
  type: 'object',
  properties: {
    severity: { type: 'string' },
    file: { type: 'string' },
    line: { type: 'integer' },
    path: { type: 'string' },
    code: { type: 'string' },
    message: { type: 'string' },
  },
} as const;

const person = { type: 'object', properties: { name: { type: 'string' }, email: { type: 'string' } } } as const;

const versionSchema = {
  type: 'object',
  properties: {
    version: { type: 'string' },
    author: person,
    committer: person,
    message: { type: 'string' },
    committedAt: { type: 'string', format: 'date-time' },
    appliedAt: { type: 'string', format: 'date-time' },
    warnings: { type: 'array', items: diagnostic },
  },
} as const;

export default async function configRoutes(app: FastifyInstance, opts: ConfigRouteOptions): Promise<void> {
  app.get(
    '/v1/config/current',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['config'],
        summary: 'The configuration version every agent is being given',
        security: [{ bearer: [] }],
        response: {
          200: versionSchema,
          404: { type: 'object', properties: { error: { type: 'string' } } },
        },
      },
    },
    async (_req, reply) => {
      const c = opts.current();
      if (!c) return reply.code(404).send({ error: 'no valid configuration has been compiled yet' });
      return versionView(c);
    },
  );

  app.get(
    '/v1/config/versions',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['config'],
        summary: 'Every configuration version the control plane applied, newest first',
        security: [{ bearer: [] }],
        response: {
          200: {
            type: 'object',
            properties: {
              versions: {
                type: 'array',
                items: versionSchema,
              },
            },
          },
        },
      },
    },
    async () => {
      const all = opts.history ? await opts.history() : [];
      const c = opts.current();
      return { versions: (all.length > 0 ? all : c ? [c] : []).map(versionView) };
    },
  );

  app.get(
    '/v1/config/attempts/latest',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['config'],
        summary: 'The latest commit the control plane tried, and why it was rejected if it was',
        security: [{ bearer: [] }],
        response: {
          200: {
            type: 'object',
            properties: { sha: { type: 'string' }, ok: { type: 'boolean' }, at: { type: 'string', format: 'date-time' }, diagnostics: { type: 'array', items: diagnostic } },
          },
          404: { type: 'object', properties: { error: { type: 'string' } } },
        },
      },
    },
    async (_req, reply) => {
      const a = opts.lastAttempt();
      if (!a) return reply.code(404).send({ error: 'no commit has been tried yet' });
      return { sha: a.sha, ok: a.ok, at: a.at.toISOString(), diagnostics: a.diagnostics };
    },
  );
}
