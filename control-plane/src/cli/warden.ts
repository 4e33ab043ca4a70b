#!/usr/bin/env node
/**
 * The `warden` command. Subcommands: validate, schema, audit, sessions.
 * Exit codes: 0 ok, 1 the thing checked is invalid, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { schemas, type DiagnosticFormat } from '../config/index.js';
import fs from 'node:fs';
import { validateCommand } from './validate.js';
import { auditVerify } from './audit.js';
import { sessionsCommand, sessionsOptions, SESSIONS_HELP } from './sessions.js';
import { UsageError } from './database.js';

const HELP = `usage: warden <command> [options]

commands:
  validate [path]      check a config repository: schemas, references, PHI coverage, policy tests
      --format text|github|json   output (github: workflow commands that annotate a pull request)
  schema [kind]        print the JSON Schema of a config kind (all kinds without an argument)
  audit verify         verify the audit hash chain and its signed checkpoints
      --database-url URL  the control plane's PostgreSQL (default: $WARDEN_DATABASE_URL)
      --schema NAME       schema of the audit tables (default: warden)
      --public-key FILE   the control plane's checkpoint public key (PEM)
      --from-checkpoint N start at a signed checkpoint instead of the first record
${SESSIONS_HELP}
      (sessions take --database-url and --schema like audit)

options:
  --json               machine-readable output (same as --format json)
  -h, --help           this help

examples:
  warden validate policy-examples/hipaa
  warden validate . --format github      # in a GitHub Actions step
  warden schema Role > role.schema.json
  warden audit verify --database-url postgres://cp@db/warden --public-key cp-audit.pub --json
  warden sessions list --identity analytics-bot --from 2026-11-01 --table clinic.patients --decision mask
  warden sessions replay 01a211f3-f305-700e-a56d-1dbd1824ed15 --speed 10
  warden sessions replay 01a211f3-f305-700e-a56d-1dbd1824ed15 --format html > session.html
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      format: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      'database-url': { type: 'string' },
      schema: { type: 'string' },
      'public-key': { type: 'string' },
      'from-checkpoint': { type: 'string' },
      ...sessionsOptions,
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const format = (values.json ? 'json' : values.format ?? 'text') as DiagnosticFormat;
  if (!['text', 'github', 'json', 'html'].includes(format)) {
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
    case 'audit': {
      if (rest[0] !== 'verify') break;
      const url = values['database-url'] ?? process.env.WARDEN_DATABASE_URL;
      if (!url || !values['public-key']) {
        process.stderr.write('warden audit verify: --database-url (or WARDEN_DATABASE_URL) and --public-key are required\n');
        return 2;
      }
      const r = await auditVerify({
        url,
        schema: values.schema ?? 'warden',
        publicKeyPem: fs.readFileSync(values['public-key'], 'utf8'),
        ...(values['from-checkpoint'] ? { fromCheckpoint: Number(values['from-checkpoint']) } : {}),
      });
      if (format === 'json') process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else if (r.ok) process.stdout.write(`audit log verified: ${r.checked} records, ${r.checkpointsVerified} signed checkpoints\n`);
      else process.stdout.write(`audit log FAILED verification at record ${r.problem!.seq}: ${r.problem!.kind} — ${r.problem!.detail}\n`);
      return r.ok ? 0 : 1;
    }
    case 'sessions':
      return sessionsCommand(rest[0], rest.slice(1), values, format, process.stdout);
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
