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

const say = (s = ''): void => void process.stdout.write(s + '\n');

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-demo-'));
  const issuer = await startOidcIssuer({
    clients: [{ clientId: 'clinical-analytics-bot', clientSecret: 'demo-secret', groups: ['ai-clinical-analytics'], audience: 'warden' }],
  });
  const port = Number(process.env.WARDEN_DEMO_PORT ?? 6432);
  const config = parseAgentConfig(
    JSON.stringify({
      agent: { id: 'demo-agent' },
      listeners: [{ name: 'pg', protocol: 'postgres', address: '127.0.0.1', port, target: 'clinical', allowPlaintext: true }],
      targets: [{ name: 'clinical', kind: 'postgres', host: services.postgres.host, port: services.postgres.port, database: services.postgres.database, user: services.postgres.user }],
      identity: { issuers: [{ issuer: issuer.issuer, audience: 'warden' }], groupMappings: [{ group: 'ai-clinical-analytics', role: 'clinical-analytics' }] },
      roles: [{ name: 'clinical-analytics', targets: ['clinical'] }],
      recording: { kind: 'jsonl', path: path.join(dir, 'sessions.jsonl') },
    }),
    'demo',
  );
  const agent = await startAgent(config, { baseDir: dir, logger: pino({ level: 'warn' }) });
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
  const who = await client.query('SELECT current_user AS upstream_user, version() AS v');
  say(`   connected; upstream login is the agent's own (${who.rows[0].upstream_user}), ${String(who.rows[0].v).split(',')[0]}`);
  const r = await client.query('SELECT g AS n, md5(g::text) AS digest FROM generate_series(1, 3) g');
  for (const row of r.rows) say(`   ${row.n}  ${row.digest}`);
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
  for (const e of events) say(`   ${e.type}${e.type === 'statement' ? `  ${e.tag ?? e.error?.code}  ${e.text}` : ''}`);

  say(`\nConnect yourself:\n  export PGPASSWORD=$(curl -s -u clinical-analytics-bot:demo-secret -d grant_type=client_credentials ${issuer.issuer}/token | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')\n  psql "host=127.0.0.1 port=${port} dbname=clinical user=me"`);

  const stop = async (): Promise<void> => {
    await agent.stop();
    await issuer.close();
    fs.rmSync(dir, { recursive: true, force: true });
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
