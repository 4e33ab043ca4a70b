/**
 * The audit log's trust anchor and its check: the public key that signs
 * checkpoints (published, so auditors can verify exported segments offline)
 * and verification of the chain in the database (what `warden audit verify`
 * does), for auditors.
 */
import type { KeyObject } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { keyIdOf, type AuditChain } from '../../audit/hash-chain.js';

export interface AuditRouteOptions {
  chain: AuditChain;
  publicKey: KeyObject;
}

export default async function auditRoutes(app: FastifyInstance, opts: AuditRouteOptions): Promise<void> {
  const pem = opts.publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const keyId = keyIdOf(opts.publicKey);

  app.get(
    '/v1/audit/public-key',
    {
      schema: {
        tags: ['audit'],
        summary: 'The Ed25519 public key that signs audit checkpoints (PEM), and its key id',
        response: { 200: { type: 'object', properties: { keyId: { type: 'string' }, algorithm: { type: 'string' }, publicKeyPem: { type: 'string' } }, required: ['keyId', 'algorithm', 'publicKeyPem'] } },
      },
    },
    async () => ({ keyId, algorithm: 'Ed25519', publicKeyPem: pem }),
  );

  app.post<{ Body: { fromCheckpoint?: number } | undefined }>(
    '/v1/audit/verify',
    {
      onRequest: app.requireCapability('auditor'),
      schema: {
        tags: ['audit'],
        summary: 'Verify the hash chain and every signed checkpoint; names the first record that was modified, deleted, inserted or reordered',
        security: [{ bearer: [] }],
        body: { type: ['object', 'null'], additionalProperties: false, properties: { fromCheckpoint: { type: 'integer', minimum: 1 } } },
        response: {
          200: {
            type: 'object',
            properties: {
              ok: { type: 'boolean' },
              checked: { type: 'integer' },
              checkpointsVerified: { type: 'integer' },
              problem: { type: 'object', properties: { kind: { type: 'string' }, seq: { type: 'integer' }, detail: { type: 'string' } } },
            },
            required: ['ok', 'checked', 'checkpointsVerified'],
          },
          400: { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
    async (req, reply) => {
      const from = req.body?.fromCheckpoint;
      try {
        return await opts.chain.verify(opts.publicKey, from !== undefined ? { fromCheckpoint: from } : {});
      } catch (err) {
        return reply.code(400).send({ error: 'bad_request', message: (err as Error).message });
      }
    },
  );
}
