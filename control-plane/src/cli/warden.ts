#!/usr/bin/env node
/**
 * The `warden` command. Subcommands so far: validate, schema.
 * Exit codes: 0 ok, 1 the thing checked is invalid, 2 usage error.
 */
import { parseArgs } from 'node:util';
import { schemas, type DiagnosticFormat } from '../config/index.js';
import { validateCommand } from './validate.js';

const HELP = `usage: warden <command> [options]

commands:
  validate [path]      check a config repository: schemas, references, PHI coverage, policy tests
      --format text|github|json   output (github: workflow commands that annotate a pull request)
  schema [kind]        print the JSON Schema of a config kind (all kinds without an argument)

options:
  --json               machine-readable output (same as --format json)
  -h, --help           this help

examples:
  warden validate policy-examples/hipaa
  warden validate . --format github      # in a GitHub Actions step
  warden schema Role > role.schema.json
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { format: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    process.stdout.write(HELP);
    return values.help ? 0 : 2;
  }
  const format = (values.json ? 'json' : values.format ?? 'text') as DiagnosticFormat;
  if (!['text', 'github', 'json'].includes(format)) {
    process.stderr.write(`warden: unknown format "${format}" (text, github, json)\n`);
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
    default:
      process.stderr.write(`warden: unknown command "${command}"\n\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`warden: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
