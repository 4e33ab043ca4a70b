/** POST /v1/enrollment-tokens: admins only, bounded input, a token that enrolls once and is stored only as a hash. */
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../server.js';
import enrollmentTokenRoutes from './enrollment-tokens.js';
import { TokenVerifier } from '../../../../agent/src/identity/index.js';
import { AgentRegistry } from '../../distribution/agent-registry.js';
import { startOidcIssuer, type TestIssuer } from '../../../../test/support/oidc-issuer.js';
import { services } from '../../../../test/support/services.js';

const pool = new pg.Pool({ ...services.postgres, max: 2 });
const schema = `enroll_api_${process.pid}`;
let issuer: TestIssuer;
let api: FastifyInstance;
let registry: AgentRegistry;

beforeAll(async () => {
  issuer = await startOidcIssuer();
  registry = new AgentRegistry(pool, schema);
  await registry.migrate();
  api = await buildApi({
    people: { verifier: new TokenVerifier([{ issuer: issuer.issuer, audience: 'warden-api' }]), capabilities: { admin: ['platform-admins'], approver: [], auditor: ['compliance'] } },
    health: { ready: () => true },
    config: { current: () => undefined, lastAttempt: () => undefined },
    agents: { list: async () => [] },
    register: async (app) => app.register(enrollmentTokenRoutes, { create: (o) => registry.createToken(o) }),
  });
});

afterAll(async () => {
  await api?.close();
  await issuer?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const as = async (groups: string[]) => ({ authorization: `Bearer ${await issuer.sign({ sub: 'someone', groups }, { audience: 'warden-api' })}` });
const post = async (body: unknown, headers: Record<string, string>) => api.inject({ method: 'POST', url: '/v1/enrollment-tokens', headers, payload: body as object });

describe('POST /v1/enrollment-tokens', () => {
  it('gives an admin a one-time token with labels that enrolls once; only its hash is stored', async () => {
    const before = Date.now();
    const res = await post({ ttlSeconds: 120, labels: { site: 'east' } }, await as(['platform-admins']));
    expect(res.statusCode).toBe(201);
    const body = res.json() as { token: string; expiresAt: string; reusable: boolean };
    expect(body).toMatchObject({ token: expect.stringMatching(/^wde_[A-Za-z0-9_-]{32}$/), reusable: false });
    expect(Date.parse(body.expiresAt) - before).toBeGreaterThanOrEqual(119_000);
    expect(Date.parse(body.expiresAt) - before).toBeLessThan(125_000);
    expect(await registry.consume(body.token)).toEqual({ site: 'east' });
    await expect(registry.consume(body.token)).rejects.toThrow('enrollment token used');
    const stored = await pool.query(`SELECT token_hash::text AS h, labels FROM "${schema}".enrollment_tokens`);
    expect(JSON.stringify(stored.rows)).not.toContain(body.token);
  });

  it('issues reusable tokens on request', async () => {
    const { token } = (await post({ reusable: true }, await as(['platform-admins']))).json() as { token: string };
    expect(await registry.consume(token)).toEqual({});
    expect(await registry.consume(token)).toEqual({});
  });

  it('refuses people without the admin capability, and bad input', async () => {
    expect((await post({}, {})).statusCode).toBe(401);
    expect((await post({}, await as(['compliance']))).statusCode).toBe(403);
    const admin = await as(['platform-admins']);
    for (const bad of [{ ttlSeconds: 0 }, { ttlSeconds: 31 * 86_400 }, { ttlSeconds: 'soon' }, { reusable: 'yes' }, { labels: { site: 'x'.repeat(257) } }, { labels: { site: { nested: 'x' } } }, { owner: 'x' }]) {
      expect((await post(bad, admin)).statusCode, JSON.stringify(bad)).toBe(400);
    }
    expect((await post({ ttl: 60 }, admin)).json()).toMatchObject({ message: 'unknown field(s): ttl (allowed: ttlSeconds, reusable, labels)' });
    expect((await pool.query(`SELECT count(*)::int AS n FROM "${schema}".enrollment_tokens`)).rows[0].n).toBe(2); // the two issued above; refusals issue none
  });
});
