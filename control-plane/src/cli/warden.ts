#!/usr/bin/env node
/**
 * The `warden` command: validate, schema, token, agents, approvals, sessions, evidence, audit, db.
 * Exit codes: 0 ok, 1 the thing checked is invalid, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { schemas, type DiagnosticFormat } from '../config/index.js';
import { validateCommand } from './validate.js';
import { auditCommand, auditOptions, AUDIT_HELP } from './audit.js';
import { sessionsCommand, sessionsOptions, SESSIONS_HELP } from './sessions.js';
import { DATABASE_HELP, databaseOptions, UsageError } from './database.js';
import { approvalsDecide, approvalsList, approvalsVerify } from './approvals.js';
import { apiTarget } from './api-client.js';
import { agentsList } from './agents.js';
import { evidenceExport } from './evidence.js';
import { dbCommand } from './db.js';
import { tokenCommand } from './token.js';
import { enrollTokenCommand } from './enroll-token.js';

const HELP = `usage: warden <command> [options]

commands:
  validate [path]      check a config repository: schemas, references, PHI coverage, policy tests
      --format text|github|json   output (github: workflow commands that annotate a pull request)
  schema [kind]        print the JSON Schema of a config kind (all kinds without an argument)
${AUDIT_HELP}
${SESSIONS_HELP}
  audit and sessions read the control plane's database:
${DATABASE_HELP}
  approvals list       approval requests (--state pending|approved|denied|expired|withdrawn)
  approvals approve ID approve a held statement as the person whose token is given (--comment TEXT)
  approvals deny ID    deny it (--comment TEXT: the requester sees it)
      --api URL           the control plane API (default: $WARDEN_API_URL)
      --token REF         env:NAME or file:PATH holding your OIDC token (default: $WARDEN_TOKEN)
  evidence export      the evidence report for auditors: who touched PHI, masked/unmasked, denials, approvals, policy, chain
      --from DATE --to DATE  the period (YYYY-MM-DD, --to inclusive, or ISO times)
      --format LIST       html,json,csv (default all three)   --out DIR  where to write (default .)
      --database-url URL --public-key FILE   read the control plane's database directly (progress shown), or
      --api URL --token REF                  ask its API (auditor capability)
  approvals verify FILE check a signed approval record offline (FILE: JSON of GET /v1/approvals/ID, or -)
      --public-key FILE   the control plane's public key (PEM, from GET /v1/keys)
  db status|migrate    the control plane's database schema: applied and pending migrations, or apply them
      --database-url URL  the control plane's PostgreSQL (default: $WARDEN_DATABASE_URL)
      --schema NAME       schema of the control plane's tables (default: warden)
  agents list          enrolled agents: connected or not, the config version each applied (--api, --token)
  agents enroll-token  create an enrollment token for new agents (--enroll-token); printed once
      --database-url URL  the control plane's PostgreSQL (default: $WARDEN_DATABASE_URL)
      --schema NAME       schema of the control plane's tables (default: warden)
      --ttl DURATION      how long it is valid: 30m, 24h, 7d (default 24h)
      --reusable          any number of agents may enroll with it (default: one agent)
      --label key=value   labels the enrolled agents get (listeners' agentSelector), repeatable
      --output FILE       write it to FILE (mode 0600) instead of printing it
  token                fetch an access token for an AI agent (OAuth client credentials) and print it
      --issuer URL        the identity provider (discovery at URL/.well-known/openid-configuration)
      --client-id ID      the agent's client id
      --client-secret REF env:NAME or file:PATH (never the secret itself)
      --audience A        audience to ask for (IdPs that support it)
      --scope S           scopes to ask for, space-separated
      --json              the token with token_type, expires_in and expires_at

options:
  --json               machine-readable output (same as --format json)
  -h, --help           this help

examples:
  warden validate policy-examples/hipaa
  warden validate . --format github      # in a GitHub Actions step
  warden schema Role > role.schema.json
  warden evidence export --from 2026-10-01 --to 2026-12-31 --out q4-evidence --api $API --token env:WARDEN_TOKEN
  warden approvals list --state pending --api https://warden.example.org --token env:WARDEN_TOKEN
  warden approvals approve 01a2... --comment "discharge call"
  curl -s -H "authorization: Bearer $T" $API/v1/approvals/01a2... | warden approvals verify - --public-key cp.pem
  warden audit verify --database-url postgres://cp@db/warden --public-key cp-audit.pub --json
  warden audit export --out /mnt/worm/warden-audit --segment-size 100000
  warden audit verify --segments /mnt/worm/warden-audit --public-key cp-audit.pub
  warden audit prune --retention 7y
  warden sessions list --identity analytics-bot --from 2026-11-01 --table clinic.patients --decision mask
  warden sessions replay 01a211f3-f305-700e-a56d-1dbd1824ed15 --speed 10
  warden sessions replay 01a211f3-f305-700e-a56d-1dbd1824ed15 --cast 1 > ssh-session.cast   # asciinema play ssh-session.cast
  warden db status --database-url postgres://cp@db/warden   # exit 1 when migrations are pending
  warden db migrate --database-url postgres://admin@db/warden
  warden agents enroll-token --database-url postgres://cp@db/warden --reusable --ttl 720h --label site=east
  PGPASSWORD="$(warden token --issuer https://idp.example.org/realms/hospital --client-id analytics-bot \
      --client-secret env:BOT_SECRET --audience warden)" psql "host=warden-agent port=6432 dbname=clinical sslmode=require"
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      format: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...databaseOptions,
      ...auditOptions,
      ...sessionsOptions,
      state: { type: 'string' },
      comment: { type: 'string' },
      api: { type: 'string' },
      token: { type: 'string' },
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      audience: { type: 'string' },
      scope: { type: 'string' },
      ttl: { type: 'string' },
      reusable: { type: 'boolean' },
      label: { type: 'string', multiple: true },
      output: { type: 'string' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const format = (values.json ? 'json' : values.format ?? 'text') as DiagnosticFormat;
  // `evidence export --format` takes a list of file formats; it checks them itself.
  if (command !== 'evidence' && !['text', 'github', 'json', 'html'].includes(format)) {
    process.stderr.write(`warden: unknown format "${format}" (text, github, json, html)\n`);
    return 2;
  }
  switch (command) {
    case 'validate':
      return validateCommand(rest[0] ?? '.', format, process.stdout);
    case 'schema': {
      const kind = rest[0];
      if (kind && !(kind in schemas)) {
        process.stderr.write(`warden schema: unknown kind "${kind}" (${Object.keys(schemas).join(', ')})\n`);
        return 2;
      }
      process.stdout.write(JSON.stringify(kind ? schemas[kind as keyof typeof schemas] : schemas, null, 2) + '\n');
      return 0;
    }
    case 'token':
      return tokenCommand(
        {
          json: format === 'json',
          ...(values.issuer ? { issuer: values.issuer } : {}),
          ...(values['client-id'] ? { clientId: values['client-id'] } : {}),
          ...(values['client-secret'] ? { clientSecret: values['client-secret'] } : {}),
          ...(values.audience ? { audience: values.audience } : {}),
          ...(values.scope ? { scope: values.scope } : {}),
        },
        { stdout: process.stdout, stderr: process.stderr },
      );
    case 'agents':
      if (rest[0] === 'list') {
        const target = apiTarget(values);
        if (typeof target === 'string') {
          process.stderr.write(`warden agents list: ${target}\n`);
          return 2;
        }
        return agentsList(target, format === 'json', process.stdout);
      }
      if (rest[0] !== 'enroll-token') break;
      return enrollTokenCommand(
        {
          schema: values.schema ?? 'warden',
          reusable: values.reusable ?? false,
          labels: values.label ?? [],
          json: format === 'json',
          ...(values['database-url'] ?? process.env.WARDEN_DATABASE_URL ? { databaseUrl: values['database-url'] ?? process.env.WARDEN_DATABASE_URL } : {}),
          ...(values.ttl ? { ttl: values.ttl } : {}),
          ...(values.output ? { output: values.output } : {}),
        },
        { stdout: process.stdout, stderr: process.stderr },
      );
    case 'audit':
      return auditCommand(rest[0], values, format, process.stdout, (line) => process.stderr.write(`${line}\n`));
    case 'sessions':
      return sessionsCommand(rest[0], rest.slice(1), values, format, process.stdout);
    case 'evidence': {
      if (rest[0] !== 'export') break;
      const usesApi = !values['database-url'] && (values.api || process.env.WARDEN_API_URL);
      return evidenceExport(
        {
          ...(values.from ? { from: values.from } : {}),
          ...(values.to ? { to: values.to } : {}),
          ...(values.format && values.format !== 'json' ? { format: values.format } : {}),
          ...(values.out ? { out: values.out } : {}),
          ...(values['database-url'] ? { databaseUrl: values['database-url'] } : {}),
          schema: values.schema ?? 'warden',
          ...(values['public-key'] ? { publicKey: values['public-key'] } : {}),
          ...(usesApi ? { api: apiTarget(values) } : {}),
          json: values.json === true,
        },
        process.stdout,
        process.stderr,
      );
    }
    case 'approvals': {
      const [sub, arg] = rest;
      const json = format === 'json';
      if (sub === 'verify') {
        if (!arg || !values['public-key']) {
          process.stderr.write('warden approvals verify: a FILE (or -) and --public-key are required\n');
          return 2;
        }
        return approvalsVerify(arg, values['public-key'], json, process.stdout);
      }
      if (sub !== 'list' && sub !== 'approve' && sub !== 'deny') break;
      const target = apiTarget(values);
      if (typeof target === 'string') {
        process.stderr.write(`warden approvals: ${target}\n`);
        return 2;
      }
      if (sub === 'list') return approvalsList(target, values.state, json, process.stdout);
      if (!arg) {
        process.stderr.write(`warden approvals ${sub}: the request id is required\n`);
        return 2;
      }
      return approvalsDecide(target, arg, sub, values.comment, json, process.stdout);
    }
    case 'db':
      return dbCommand({ action: rest[0], url: values['database-url'] ?? process.env.WARDEN_DATABASE_URL, schema: values.schema ?? 'warden', json: format === 'json', out: process.stdout, err: process.stderr });
    default:
  }
  process.stderr.write(`warden: unknown command "${[command, ...rest].join(' ')}"\n\n${HELP}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Bad flags (parseArgs) and bad values are usage errors; anything else means the check could not be done.
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`${usage ? '' : 'warden: '}${(err as Error).message}\n`);
    process.exit(usage ? 2 : 1);
  },
);
