/**
 * The control plane's public keys, for anyone verifying what it signed
 * offline: bundles, approval records (`warden approvals verify`).
 */
import type { FastifyInstance } from 'fastify';
import type { KeyObject } from 'node:crypto';

export interface KeyRouteOptions {
  keys: Array<{ keyId: string; uses: string[]; publicKey: KeyObject }>;
}

export default async function keyRoutes(app: FastifyInstance, opts: KeyRouteOptions): Promise<void> {
  app.get(
    '/v1/keys',
    {
      schema: {
        tags: ['keys'],
        summary: 'Public keys of the control plane (Ed25519, PEM) and what each signs',
        response: {
          200: {
            type: 'object',
            properties: {
              keys: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { keyId: { type: 'string' }, uses: { type: 'array', items: { type: 'string' } }, publicKeyPem: { type: 'string' } },
                  required: ['keyId', 'uses', 'publicKeyPem'],
                },
              },
            },
            required: ['keys'],
          },
        },
      },
    },
    async () => ({ keys: opts.keys.map((k) => ({ keyId: k.keyId, uses: k.uses, publicKeyPem: k.publicKey.export({ type: 'spki', format: 'pem' }) as string })) }),
  );
}
