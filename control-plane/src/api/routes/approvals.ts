/**
 * Approval requests for people: approvers list what waits and decide; each
 * decided request carries its signed record, verifiable offline with the
 * key at /v1/keys (`warden approvals verify`).
 */
import type { FastifyInstance } from 'fastify';
import type { ApprovalService } from '../../approvals/approval-service.js';
import { VoteRefused } from '../../approvals/approval-service.js';
import type { ApprovalStore, ApprovalState, StoredApproval } from '../../approvals/approval-store.js';

export interface ApprovalRouteOptions {
  service: ApprovalService;
  store: ApprovalStore;
}

const STATES = ['pending', 'approved', 'denied', 'expired', 'withdrawn'];

const approvalSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    state: { type: 'string', enum: STATES },
    agentId: { type: 'string' },
    sessionId: { type: 'string' },
    ruleId: { type: 'string' },
    requester: { type: 'object', properties: { subject: { type: 'string' }, issuer: { type: 'string' }, groups: { type: 'array', items: { type: 'string' } } } },
    role: { type: 'string' },
    target: { type: 'string' },
    statement: { type: 'string' },
    parameters: { type: 'array', items: { type: 'object', properties: { text: { type: 'string' }, isNull: { type: 'boolean' }, masked: { type: 'boolean' } } } },
    statementHash: { type: 'string', description: 'hex' },
    touchedColumns: { type: 'array', items: { type: 'string' } },
    bundleVersion: { type: 'string' },
    createdAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    decidedAt: { type: 'string', format: 'date-time' },
    votes: {
      type: 'array',
      items: {
        type: 'object',
        properties: { subject: { type: 'string' }, issuer: { type: 'string' }, vote: { type: 'string' }, comment: { type: 'string' }, via: { type: 'string' }, decidedAt: { type: 'string', format: 'date-time' } },
      },
    },
    signedRecord: {
      type: 'object',
      description: 'The signed ApprovalRecord (base64 protobuf) and its Ed25519 signature over "warden.v1.ApprovalRecord\\0" + record',
      properties: { record: { type: 'string' }, signature: { type: 'string' }, keyId: { type: 'string' } },
    },
  },
  required: ['id', 'state', 'ruleId', 'statement', 'createdAt', 'expiresAt', 'votes'],
} as const;

export function approvalView(a: StoredApproval): Record<string, unknown> {
  const r = a.request;
  return {
    id: a.id,
    state: a.state,
    agentId: a.agentId,
    sessionId: r.sessionId,
    ruleId: r.ruleId,
    requester: { subject: r.identity?.subject ?? '', issuer: r.identity?.issuer ?? '', groups: r.identity?.groups ?? [] },
    role: r.role,
    target: r.target,
    statement: r.statementText,
    parameters: r.parameters.map((p) => ({ text: p.text, isNull: p.isNull, masked: p.masked })),
    statementHash: Buffer.from(r.statementHash).toString('hex'),
    touchedColumns: r.touchedColumns,
    bundleVersion: r.bundleVersion,
    createdAt: a.createdAt.toISOString(),
    expiresAt: a.expiresAt.toISOString(),
    ...(a.decidedAt ? { decidedAt: a.decidedAt.toISOString() } : {}),
    votes: a.votes.map((v) => ({ subject: v.subject, issuer: v.issuer, vote: v.vote, comment: v.comment, via: v.via, decidedAt: v.decidedAt.toISOString() })),
    ...(a.signed ? { signedRecord: { record: a.signed.record.toString('base64'), signature: a.signed.signature.toString('base64'), keyId: a.signed.keyId } } : {}),
  };
}

export default async function approvalRoutes(app: FastifyInstance, opts: ApprovalRouteOptions): Promise<void> {
  app.get<{ Querystring: { state?: ApprovalState; limit?: number } }>(
    '/v1/approvals',
    {
      onRequest: app.requireCapability(['approver', 'auditor']),
      schema: {
        tags: ['approvals'],
        summary: 'Approval requests, newest first',
        security: [{ bearer: [] }],
        querystring: { type: 'object', properties: { state: { type: 'string', enum: STATES }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200 } } },
        response: { 200: { type: 'object', properties: { approvals: { type: 'array', items: approvalSchema } }, required: ['approvals'] } },
      },
    },
    async (req) => ({ approvals: (await opts.store.list(req.query.state, req.query.limit)).map(approvalView) }),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/approvals/:id',
    {
      onRequest: app.requireCapability(['approver', 'auditor']),
      schema: {
        tags: ['approvals'],
        summary: 'One approval request with its votes and, once decided, its signed record',
        security: [{ bearer: [] }],
        params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
        response: { 200: approvalSchema, 404: { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } } },
      },
    },
    async (req, reply) => {
      const a = await opts.store.get(req.params.id);
      if (!a) return reply.code(404).send({ error: 'not_found', message: `no approval request ${req.params.id}` });
      return approvalView(a);
    },
  );

  app.post<{ Params: { id: string }; Body: { decision: 'approve' | 'deny'; comment?: string } }>(
    '/v1/approvals/:id/decision',
    {
      onRequest: app.requireCapability('approver'),
      schema: {
        tags: ['approvals'],
        summary: 'Approve or deny a pending request as the authenticated approver',
        security: [{ bearer: [] }],
        params: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
        body: {
          type: 'object',
          properties: { decision: { type: 'string', enum: ['approve', 'deny'] }, comment: { type: 'string', maxLength: 2000 } },
          required: ['decision'],
          additionalProperties: false,
        },
        response: {
          200: approvalSchema,
          '4xx': { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
    async (req, reply) => {
      const who = req.principal!.identity;
      try {
        const a = await opts.service.vote(req.params.id, { subject: who.subject, issuer: who.issuer, groups: who.groups }, req.body.decision, req.body.comment ?? '', 'api');
        return approvalView(a);
      } catch (err) {
        if (err instanceof VoteRefused) return reply.code(err.status).send({ error: err.status === 404 ? 'not_found' : err.status === 403 ? 'forbidden' : 'conflict', message: err.message });
        throw err;
      }
    },
  );
}
