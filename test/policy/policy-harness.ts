/**
 * A real agent under the hospital policy, in front of the real PostgreSQL
 * loaded with a synthetic PHI data set in a schema of the test's own.
 */
import type pg from 'pg';
import { startOidcIssuer, type TestIssuer } from '../support/oidc-issuer.js';
import { connectThroughAgent, directClient, startTestAgent, type TestAgent, type TestAgentOptions } from '../support/agent-harness.js';
import { loadPhi, phiValues, type PhiRows } from '../fixtures/phi/generate.js';
import { hospitalPolicy, GROUPS } from './hospital-policy.js';
import { RawPg, serialize } from '../support/raw-pg.js';

export interface PolicyWorld {
  schema: string;
  issuer: TestIssuer;
  agent: TestAgent;
  rows: PhiRows;
  /** Raw PHI strings from the generated data that must never reach a client who may not see them. */
  secrets: string[];
  tokenFor(group: keyof typeof GROUPS, sub?: string): Promise<string>;
  client(group: keyof typeof GROUPS): Promise<pg.Client>;
  /** Every byte the server side sends back for one simple query, and the messages parsed. */
  rawQuery(group: keyof typeof GROUPS, sql: string): Promise<{ bytes: Buffer; messages: Array<Record<string, unknown>> }>;
  close(): Promise<void>;
}

export async function startPolicyWorld(name: string, patients = 120, agentOptions: Partial<TestAgentOptions> = {}): Promise<PolicyWorld> {
  const schema = `${name}_${process.pid}`;
  const direct = await directClient();
  const { rows } = await loadPhi(direct, { patients, schema, seed: 7 });
  await direct.end();
  const issuer = await startOidcIssuer();
  const policy = hospitalPolicy(schema);
  const agent = await startTestAgent({ issuer: issuer.issuer, ...policy, ...agentOptions });
  const secrets = [...phiValues(rows, ['name', 'ssn', 'mrn', 'phone', 'email', 'address', 'dob'])].filter((s) => s.length >= 4);
  const tokenFor = (group: keyof typeof GROUPS, sub = `${group}-bot`): Promise<string> => issuer.sign({ sub, groups: [GROUPS[group]] });
  return {
    schema,
    issuer,
    agent,
    rows,
    secrets,
    tokenFor,
    client: async (group) => connectThroughAgent(agent.port, await tokenFor(group)),
    async rawQuery(group, sql) {
      const raw = await RawPg.login(agent.port, await tokenFor(group));
      const chunks: Buffer[] = [];
      raw.socket.on('data', (d: Buffer) => chunks.push(d));
      raw.send(serialize.query(sql));
      const messages = await raw.untilReady();
      raw.end();
      return { bytes: Buffer.concat(chunks), messages: messages as Array<Record<string, unknown>> };
    },
    async close() {
      await agent.stop();
      await issuer.close();
      const d = await directClient();
      await d.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await d.end();
    },
  };
}

/** The raw PHI values present in `bytes` (UTF-8 and Latin-1 views both searched). */
export function leaked(bytes: Buffer, secrets: string[]): string[] {
  const text = bytes.toString('utf8');
  return secrets.filter((s) => text.includes(s));
}
