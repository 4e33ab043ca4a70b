/**
 * `make demo`: an OIDC issuer and a Warden agent in front of the local
 * PostgreSQL, then a scripted AI-agent session through the agent: a
 * verified login and queries, a forged token refused, and where the
 * session record landed. Leaves the stack running until Ctrl-C (or exits
 * at once with WARDEN_DEMO_EXIT=1, as CI runs it).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { startOidcIssuer } from '../../test/support/oidc-issuer.js';
import { services } from '../../test/support/services.js';
import { startAgent } from '../../agent/src/agent.js';
import { parseAgentConfig } from '../../agent/src/config/load.js';
import { readJsonl } from '../../agent/src/audit/jsonl-recorder.js';
import { loadPhi } from '../../test/fixtures/phi/generate.js';
import { hospitalPolicy } from '../../test/policy/hospital-policy.js';

const say = (s = ''): void => void process.stdout.write(s + '\n');

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-'));
  const issuer = await startOidcIssuer({
    clients: [{ clientId: 'clinical-analytics-bot', clientSecret: 'demo-secret', groups: ['ai-clinical-analytics'], audience: 'warden' }],
  });
  const wantedPort = Number(process.env.WARDEN_DEMO_PORT ?? 6432);
  // Synthetic PHI (never real data) in a schema of its own.
  const schema = 'warden_demo';
  const loader = new pg.Client({ ...services.postgres });
  await loader.connect();
  await loadPhi(loader, { patients: 500, schema });
  await loader.end();
  const policy = hospitalPolicy(schema);
  const config = parseAgentConfig(
    JSON.stringify({
      agent: { id: 'demo-agent' },
      listeners: [{ name: 'pg', protocol: 'postgres', address: '127.0.0.1', port: wantedPort, target: 'clinical', allowPlaintext: true }],
      targets: [{ name: 'clinical', kind: 'postgres', host: services.postgres.host, port: services.postgres.port, database: services.postgres.database, user: services.postgres.user }],
      identity: { issuers: [{ issuer: issuer.issuer, audience: 'warden' }], groupMappings: policy.groupMappings },
      roles: policy.roles,
      classification: policy.classification,
      masking: policy.masking,
      recording: { kind: 'jsonl', path: path.join(dir, 'sessions.jsonl') },
    }),
    'demo',
  );
  const agent = await startAgent(config, { baseDir: dir, logger: pino({ level: 'warn' }) });
  const port = agent.addresses.get('pg')!.port;
  say(`Warden demo: issuer ${issuer.issuer}, agent on 127.0.0.1:${port} → PostgreSQL ${services.postgres.host}:${services.postgres.port}/${services.postgres.database}`);

  // 1. The AI agent gets a token with the client-credentials grant, as it would from a real IdP.
  const res = await fetch(`${issuer.issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: 'Basic ' + Buffer.from('clinical-analytics-bot:demo-secret').toString('base64'),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: 'grant_type=client_credentials',
  });
  const { access_token: token } = (await res.json()) as { access_token: string };
  say('\n1. token fetched with client_credentials; connecting with it as the password');
  const client = new pg.Client({ host: '127.0.0.1', port, database: 'clinical', user: 'clinical-analytics-bot', password: token });
  await client.connect();
  say('   role clinical-analytics: identifiers redacted or tokenised, dates of birth as years, ZIP3');
  const r = await client.query(`SELECT id, mrn, first_name, last_name, ssn, dob, zip, sex FROM ${schema}.patients ORDER BY id LIMIT 3`);
  for (const row of r.rows) say(`   ${[row.id, row.mrn, row.first_name, row.last_name, row.ssn, row.dob, row.zip, row.sex].join('  ')}`);
  say('\n   a query outside the role is refused with a PostgreSQL error:');
  await client.query(`SELECT body FROM ${schema}.clinical_notes LIMIT 1`).then(
    () => say('   UNEXPECTED: answered'),
    (err: { code: string; message: string }) => say(`   ${err.code} ${err.message}`),
  );
  await client.query(`SELECT ssn::int FROM ${schema}.patients`).then(
    () => say('   UNEXPECTED: answered'),
    (err: { code: string; message: string }) => say(`   ${err.code} ${err.message}`),
  );
  await client.end();

  // 2. A forged token: signed by nobody the agent trusts.
  say('\n2. a tampered token is refused before anything reaches the database');
  const forged = new pg.Client({ host: '127.0.0.1', port, database: 'clinical', user: 'x', password: issuer.tamper(token) });
  await forged.connect().then(
    () => say('   UNEXPECTED: accepted'),
    (err: { code: string; message: string }) => say(`   refused: ${err.code} ${err.message}`),
  );

  await agent.recorder.flush();
  const events = readJsonl(path.join(dir, 'sessions.jsonl'));
  say(`\n3. session record (${events.length} events) in ${path.join(dir, 'sessions.jsonl')}:`);
  for (const e of events) say(`   ${e.type}${e.type === 'statement' ? `  ${e.decision}  ${e.tag ?? e.error?.code}  ${e.text.slice(0, 70)}` : ''}`);

  say(`\nConnect yourself:\n  export PGPASSWORD=$(curl -s -u clinical-analytics-bot:demo-secret -d grant_type=client_credentials ${issuer.issuer}/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')\n  psql "host=127.0.0.1 port=${port} dbname=clinical user=me"`);

  const stop = async (): Promise<void> => {
    await agent.stop();
    await issuer.close();
    fs.rmSync(dir, { recursive: true, force: true });
    const cleanup = new pg.Client({ ...services.postgres });
    await cleanup.connect();
    await cleanup.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await cleanup.end();
    process.exit(0);
  };
  if (process.env.WARDEN_DEMO_EXIT === '1' || process.env.CI) return stop();
  say('\nRunning until Ctrl-C.');
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
