/**
 * `make demo`: the whole stack on embedded defaults (see stack.ts), then a
 * scripted AI-agent session through the agent — a masked read, refusals, a
 * forged token, a risky query held until a charge nurse approves it with
 * the `warden` CLI — and the audit trail it left in the control plane.
 * Leaves the stack running until Ctrl-C (or exits at once with
 * WARDEN_DEMO_EXIT=1, as CI runs it).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { CLIENTS, SCHEMA, startDemoStack, type DemoStack } from './stack.js';

const say = (s = ''): void => void process.stdout.write(s + '\n');
type PgError = { code: string; message: string };

/** The `warden` CLI as a person runs it: compiled when the demo runs from dist/, through tsx otherwise. */
function warden(args: string[], env: Record<string, string>): Promise<string> {
  const here = fileURLToPath(import.meta.url);
  const fromDist = here.includes(`${path.sep}dist${path.sep}`);
  const root = path.resolve(path.dirname(here), fromDist ? '../../..' : '../..');
  const argv = fromDist ? [path.join(root, 'dist/control-plane/src/cli/warden.js'), ...args] : ['--import', 'tsx', path.join(root, 'control-plane/src/cli/warden.ts'), ...args];
  return new Promise((resolve, reject) =>
    execFile(process.execPath, argv, { cwd: root, env: { ...process.env, ...env } }, (err, stdout, stderr) => (err ? reject(new Error(`${stderr || stdout}`)) : resolve(stdout.trim()))),
  );
}

async function clientCredentialsToken(stack: DemoStack, clientId: string): Promise<string> {
  const c = CLIENTS.find((x) => x.clientId === clientId)!;
  const res = await fetch(`${stack.issuer.issuer}/token`, {
    method: 'POST',
    headers: { authorization: 'Basic ' + Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64'), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  return ((await res.json()) as { access_token: string }).access_token;
}

async function script(stack: DemoStack): Promise<void> {
  const { port } = stack;
  const connect = (user: string, password: string): pg.Client => new pg.Client({ host: '127.0.0.1', port, database: 'clinical', user, password });

  say('\n1. The clinical-analytics AI agent fetches a token (client credentials) and connects with it as the password');
  say(`   $ warden token --issuer ${stack.issuer.issuer} --client-id clinical-analytics-bot --client-secret env:ANALYTICS_SECRET --audience warden`);
  const analyticsSecret = CLIENTS.find((x) => x.clientId === 'clinical-analytics-bot')!.clientSecret;
  const token = await warden(['token', '--issuer', stack.issuer.issuer, '--client-id', 'clinical-analytics-bot', '--client-secret', 'env:ANALYTICS_SECRET', '--audience', 'warden'], { ANALYTICS_SECRET: analyticsSecret });
  say(`   ${token.slice(0, 24)}… (a signed JWT, valid for an hour)`);
  const analytics = connect('clinical-analytics-bot', token);
  await analytics.connect();
  say('   role clinical-analytics: names redacted, MRNs tokenised, SSNs partial, birth dates as years, ZIP3');
  const r = await analytics.query(`SELECT id, mrn, first_name, last_name, ssn, dob, zip, sex FROM ${SCHEMA}.patients ORDER BY id LIMIT 3`);
  for (const row of r.rows) say(`   ${[row.id, row.mrn, row.first_name, row.last_name, row.ssn, row.dob, row.zip, row.sex].join('  ')}`);

  say('\n2. Outside the role: refused with a PostgreSQL error, nothing reaches the database');
  for (const sql of [`SELECT insurer FROM ${SCHEMA}.billing LIMIT 1`, `SELECT ssn::int FROM ${SCHEMA}.patients`]) {
    await analytics.query(sql).then(
      () => say('   UNEXPECTED: answered'),
      (err: PgError) => say(`   ${err.code} ${err.message}`),
    );
  }
  await analytics.end();

  say('\n3. A tampered token is refused at login');
  const forged = connect('x', stack.issuer.tamper(token));
  await forged.connect().then(
    () => say('   UNEXPECTED: accepted'),
    (err: PgError) => say(`   refused: ${err.code} ${err.message}`),
  );

  say('\n4. The care-coordination agent asks for a patient\'s phone number: held until a charge nurse approves');
  const care = connect('care-coordination-bot', await clientCredentialsToken(stack, 'care-coordination-bot'));
  let requestId = '';
  const noticed = new Promise<void>((resolve) =>
    care.on('notice', (n) => {
      say(`   NOTICE: ${n.message}`);
      requestId = /request (\S+) is waiting/.exec(n.message ?? '')?.[1] ?? requestId;
      if (requestId) resolve();
    }),
  );
  await care.connect();
  const patient = stack.phi.rows.patients[6]!;
  const held = care.query(`SELECT id, first_name, phone FROM ${SCHEMA}.patients WHERE id = ${patient.id}`);
  await noticed;
  for (let i = 0; i < 200 && !(await stack.cp.approvals.known(requestId)); i++) await new Promise((r2) => setTimeout(r2, 10));
  const api = `http://127.0.0.1:${stack.cp.port}`;
  const nurseToken = await stack.issuer.sign({ sub: 'nurse.rivera', groups: ['charge-nurses'] }, { audience: 'warden-api', expiresIn: 3600 });
  const env = { WARDEN_DEMO_APPROVER_TOKEN: nurseToken };
  say(`   $ warden approvals list --state pending --api ${api} --token env:WARDEN_DEMO_APPROVER_TOKEN`);
  say((await warden(['approvals', 'list', '--state', 'pending', '--api', api, '--token', 'env:WARDEN_DEMO_APPROVER_TOKEN'], env)).replace(/^/gm, '   '));
  say(`   $ warden approvals approve ${requestId} --comment "discharge follow-up call"`);
  say((await warden(['approvals', 'approve', requestId, '--comment', 'discharge follow-up call', '--api', api, '--token', 'env:WARDEN_DEMO_APPROVER_TOKEN'], env)).replace(/^/gm, '   '));
  const released = await held;
  for (const row of released.rows) say(`   released: ${row.id}  ${row.first_name}  ${row.phone}`);
  await care.end();

  say('\n5. The audit trail in the control plane (hash chain, streamed by the agent)');
  for (let i = 0; i < 100; i++) {
    const count = (await stack.cp.audit.verify(stack.cp.publicKey)).checked;
    if (count >= 10) break;
    await new Promise((r2) => setTimeout(r2, 50));
  }
  const verified = await stack.cp.audit.verify(stack.cp.publicKey);
  say(`   ${verified.checked} records, chain ${verified.ok ? 'verified' : `BROKEN: ${verified.problem?.detail}`}`);

  say('\n6. Evidence for the auditors, for today');
  const day = new Date().toISOString().slice(0, 10);
  const out = path.join(stack.dir, 'evidence');
  say(`   $ warden evidence export --from ${day} --to ${day} --out ${out}`);
  const auditor = await stack.issuer.sign({ sub: 'auditor.chen', groups: ['compliance'] }, { audience: 'warden-api', expiresIn: 3600 });
  say((await warden(['evidence', 'export', '--from', day, '--to', day, '--out', out, '--api', api, '--token', 'env:WARDEN_DEMO_AUDITOR_TOKEN'], { WARDEN_DEMO_AUDITOR_TOKEN: auditor })).replace(/^/gm, '   '));

  say(`\nConnect yourself (a token from the demo IdP, then psql through the agent):
  export PGPASSWORD="$(ANALYTICS_SECRET=${analyticsSecret} warden token --issuer ${stack.issuer.issuer} --client-id clinical-analytics-bot --client-secret env:ANALYTICS_SECRET --audience warden)"
  psql "host=127.0.0.1 port=${port} dbname=clinical user=me"
(warden is node dist/control-plane/src/cli/warden.js after make build.) Control plane API: ${api}/openapi.json`);
}

async function main(): Promise<void> {
  const stack = await startDemoStack({ port: Number(process.env.WARDEN_DEMO_PORT ?? 6432), progress: (s) => say(`[demo] ${s}`) });
  say(`Warden demo: agent on 127.0.0.1:${stack.port}, control plane API on 127.0.0.1:${stack.cp.port}, IdP ${stack.issuer.issuer}`);
  const stop = async (code = 0): Promise<void> => {
    await stack.stop().catch(() => undefined);
    process.exit(code);
  };
  try {
    await script(stack);
  } catch (err) {
    process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
    return stop(1);
  }
  if (process.env.WARDEN_DEMO_EXIT === '1' || process.env.CI) return stop(0);
  say('\nRunning until Ctrl-C.');
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
