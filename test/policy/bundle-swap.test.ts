/**
 * A new policy bundle is applied atomically while the agent serves: new
 * sessions get it at once, a session in flight finishes under the bundle it
 * started with, an invalid bundle is refused whole (the old one stays), and
 * listeners that changed are restarted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPolicyWorld, type PolicyWorld } from './policy-harness.js';
import { bundleFromConfig } from '../../agent/src/config/to-bundle.js';
import type { AgentConfig, RoleConfig } from '../../agent/src/config/types.js';
import { connectThroughAgent } from '../support/agent-harness.js';
import { normalizeSql } from '../../agent/src/sql/index.js';

let w: PolicyWorld;
beforeAll(async () => {
  w = await startPolicyWorld('phi_swap', 30);
}, 60_000);
afterAll(async () => w?.close());

function withAnalytics(cfg: AgentConfig, change: (r: RoleConfig) => RoleConfig): AgentConfig {
  return { ...cfg, roles: cfg.roles.map((r) => (r.name === 'clinical-analytics' ? change(r) : r)) };
}

describe('applying a new bundle', () => {
  it('swaps atomically: new sessions see it, sessions in flight keep theirs', async () => {
    const before = await w.client('analytics');
    const sql = `SELECT sex FROM ${w.schema}.patients LIMIT 1`;
    expect((await before.query(sql)).rows).toHaveLength(1);
    const oldVersion = w.agent.agent.version;

    const stricter = withAnalytics(w.agent.config, (r) => ({
      ...r,
      tables: [{ table: `${w.schema}.patients`, defaultAction: 'allow', columns: [{ column: 'sex', action: 'deny' }, { phiClass: 'direct-identifier', action: 'mask', mask: { strategy: 'redact' } }, { phiClass: 'quasi-identifier', action: 'mask', mask: { strategy: 'redact' } }] }],
    }));
    await w.agent.agent.applyBundle(bundleFromConfig(stricter, 'stricter'));
    expect(w.agent.agent.version).not.toBe(oldVersion);

    const after = await w.client('analytics');
    await expect(after.query(sql)).rejects.toMatchObject({ code: '42501', message: expect.stringContaining('patients.sex') });
    // The session that started under the old bundle finishes under it.
    expect((await before.query(sql)).rows).toHaveLength(1);
    await before.end();
    await after.end();

    await new Promise((r) => setTimeout(r, 150));
    const recorded = normalizeSql(sql).key;
    const versions = new Set((await w.agent.events()).filter((e) => e.type === 'statement' && e.text === recorded).map((e) => (e.type === 'statement' ? e.bundleVersion : '')));
    expect(versions).toEqual(new Set([oldVersion, w.agent.agent.version]));
  });

  it('refuses an invalid bundle whole and keeps enforcing the last good one', async () => {
    const version = w.agent.agent.version;
    // It compiles (the compiler cannot see the agent's environment), but the agent cannot load its key.
    const broken: AgentConfig = {
      ...w.agent.config,
      masking: (w.agent.config.masking ?? []).map((m) => ((m as { name: string }).name === 'patient-token' ? { name: 'patient-token', hash: { keyRef: 'env:WARDEN_TEST_KEY_THAT_IS_NOT_SET', prefix: 'tok_' } } : m)),
    };
    await expect(w.agent.agent.applyBundle(bundleFromConfig(broken, 'broken'))).rejects.toThrow(/WARDEN_TEST_KEY_THAT_IS_NOT_SET is not set/);
    expect(w.agent.agent.version).toBe(version);
    const c = await w.client('analytics');
    // Still the stricter bundle of the previous test: sex denied, identifiers redacted.
    await expect(c.query(`SELECT sex FROM ${w.schema}.patients LIMIT 1`)).rejects.toMatchObject({ code: '42501' });
    expect((await c.query(`SELECT mrn FROM ${w.schema}.patients LIMIT 1`)).rows[0].mrn).toBe('[REDACTED]');
    await c.end();
  });

  it('starts a listener the new bundle adds', async () => {
    const cfg: AgentConfig = {
      ...w.agent.config,
      listeners: [...w.agent.config.listeners, { name: 'second', protocol: 'postgres', address: '127.0.0.1', port: 0, target: 'clinical', allowPlaintext: true }],
    };
    await w.agent.agent.applyBundle(bundleFromConfig(cfg, 'two listeners'));
    const port = w.agent.agent.addresses.get('second')!.port;
    const c = await connectThroughAgent(port, await w.tokenFor('analytics'));
    expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1);
    await c.end();
  });
});
