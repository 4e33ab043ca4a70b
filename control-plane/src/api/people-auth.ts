/**
 * People authenticate to the API with OIDC bearer tokens, verified exactly
 * like agents' tokens (same verifier: discovery, JWKS, pinned algorithms),
 * and get capabilities from their groups: admin, approver, auditor.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AuthError, type TokenVerifier, type VerifiedIdentity } from '../../../agent/src/identity/index.js';

export type Capability = 'admin' | 'approver' | 'auditor';

export interface PeopleAuthOptions {
  verifier: TokenVerifier;
  /** Capability → groups that grant it. */
  capabilities: Record<Capability, string[]>;
}

export interface Principal {
  identity: VerifiedIdentity;
  capabilities: Set<Capability>;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Authenticates the caller and requires one of `cap`. */
    requireCapability(cap: Capability | Capability[]): (req: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
}

async function peopleAuth(app: FastifyInstance, opts: PeopleAuthOptions): Promise<void> {
  app.decorateRequest('principal', null);
  app.decorate('requireCapability', (cap: Capability | Capability[]) => async (req: FastifyRequest, reply: FastifyReply) => {
    const header = req.headers.authorization;
    if (!header?.startsWith('Bearer ')) {
      return reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthenticated', message: 'send an OIDC access token as "Authorization: Bearer <token>"' });
    }
    let identity: VerifiedIdentity;
    try {
      identity = await opts.verifier.verify(header.slice(7).trim());
    } catch (err) {
      const message = err instanceof AuthError ? err.message : 'token verification failed';
      return reply.code(401).header('www-authenticate', 'Bearer error="invalid_token"').send({ error: 'invalid_token', message });
    }
    const capabilities = new Set<Capability>(
      (Object.entries(opts.capabilities) as Array<[Capability, string[]]>).filter(([, groups]) => groups.some((g) => identity.groups.includes(g))).map(([c]) => c),
    );
    // Admins may do what auditors do.
    if (capabilities.has('admin')) capabilities.add('auditor');
    req.principal = { identity, capabilities };
    const wanted = Array.isArray(cap) ? cap : [cap];
    if (!wanted.some((c) => capabilities.has(c))) {
      return reply.code(403).send({ error: 'forbidden', message: `this needs the ${wanted.join(' or ')} capability; your groups grant ${[...capabilities].join(', ') || 'none'}` });
    }
  });
}

export default fp(peopleAuth, { name: 'warden-people-auth' });
