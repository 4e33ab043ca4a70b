#!/usr/bin/env node
/**
 * The `warden` command. Subcommands: validate, schema, audit, sessions.
 * Exit codes: 0 ok, 1 the thing checked is invalid, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { schemas, type DiagnosticFormat } from '../config/index.js';
import { validateCommand } from './validate.js';
import { auditCommand, auditOptions, AUDIT_HELP } from './audit.js';
import { sessionsCommand, sessionsOptions, SESSIONS_HELP } from './sessions.js';
import { DATABASE_HELP, databaseOptions, UsageError } from './database.js';

const HELP = `usage: warden <command> [options]

commands:
  validate [path]      check a config repository: schemas, references, PHI coverage, policy tests
      --format text|github|json   output (github: workflow commands that annotate a pull request)
  schema [kind]        print the JSON Schema of a config kind (all kinds without an argument)
${AUDIT_HELP}
${SESSIONS_HELP}
  audit and sessions read the control plane's database:
${DATABASE_HELP}

options:
  --json               machine-readable output (same as --format json)
  -h, --help           this help

examples:
  warden validate policy-examples/hipaa
  warden validate . --format github      # in a GitHub Actions step
  warden schema Role > role.schema.json
  warden audit verify --database-url postgres://cp@db/warden --public-key cp-audit.pub --json
  warden audit export --out /mnt/worm/warden-audit --segment-size 100000
  warden audit verify --segments /mnt/worm/warden-audit --public-key cp-audit.pub
  warden audit prune --retention 7y
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
      ...databaseOptions,
      ...auditOptions,
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
    case 'audit':
      return auditCommand(rest[0], values, format, process.stdout, (line) => process.stderr.write(`${line}\n`));
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
