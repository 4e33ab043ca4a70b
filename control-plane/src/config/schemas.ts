/**
 * JSON Schemas (draft-07) of the config repository, one per kind, each
 * describing a whole document so editors can check files as they are typed.
 * The compiler validates with exactly these, so what `warden schema`
 * publishes and what CI enforces never drift apart.
 *
 * Secrets are only accepted as references. Every object is closed
 * (additionalProperties: false), which is what turns a literal `password:`
 * into an error rather than a silently ignored field.
 */
import {
  API_VERSION,
  APPROVAL_SCOPES,
  DATE_PRECISIONS,
  DECISIONS,
  DETECTORS,
  HTTP_METHODS,
  JWT_ALGORITHMS,
  PHI_CLASSES,
  POLICY_ACTIONS,
  ROW_LIMIT_ACTIONS,
  STATEMENT_KINDS,
  TLS_MODES,
  WEEKDAYS,
  type Kind,
} from './types.js';

export const SECRET_REF_PATTERN = '^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$';
export const NAME_PATTERN = '^[a-z0-9][a-z0-9_.-]{0,62}$';

type Schema = Record<string, unknown>;

const str = (description?: string): Schema => ({ type: 'string', minLength: 1, ...(description ? { description } : {}) });
const secretRef = (description: string): Schema => ({ type: 'string', pattern: SECRET_REF_PATTERN, description });
const name: Schema = { type: 'string', pattern: NAME_PATTERN, description: 'a name: lowercase letters, digits, "_", ".", "-"; at most 63 characters' };
const names: Schema = { type: 'array', items: name, uniqueItems: true };
const strings: Schema = { type: 'array', items: str(), uniqueItems: true };
const uint = (max?: number): Schema => ({ type: 'integer', minimum: 0, ...(max === undefined ? {} : { maximum: max }) });
const port: Schema = { type: 'integer', minimum: 0, maximum: 65535 };
const oneOf = (values: readonly string[]): Schema => ({ type: 'string', enum: [...values] });
const ruleId: Schema = { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:/#-]{0,127}$', description: 'a rule id: letters, digits and _ . : / # -; at most 128 characters' };
const tablePattern: Schema = { type: 'string', pattern: '^[^.\\s]+\\.[^.\\s]+$', description: 'a "schema.table" pattern ("*" matches any run of characters within one segment)' };
const columnPattern: Schema = {
  type: 'string',
  pattern: '^[^.\\s]+\\.[^.\\s]+\\.[^.\\s]+$',
  description: 'a "schema.table.column" pattern ("*" matches any run of characters within one segment)',
};
const duration: Schema = { type: 'string', pattern: '^(\\d+d)?(\\d+h)?(\\d+m)?(\\d+s)?$', minLength: 2, description: 'a duration such as "30s", "5m", "1h30m"' };
const singleChar: Schema = { type: 'string', minLength: 1, maxLength: 1 };

function obj(properties: Record<string, Schema>, required: string[] = [], extra: Schema = {}): Schema {
  return { type: 'object', additionalProperties: false, required, properties, ...extra };
}

/** Exactly one of the listed keys; what the proto calls a oneof. */
function exactlyOne(keys: string[]): Schema {
  return { oneOf: keys.map((k) => ({ required: [k] })) };
}

const maskSpec: Schema = obj(
  {
    strategy: name,
    params: {
      type: 'object',
      description: 'Per-use overrides of the strategy settings, e.g. {keepSuffix: 4}',
      additionalProperties: { type: ['string', 'number', 'boolean'] },
    },
  },
  ['strategy'],
);

const targetSpec = obj(
  {
    name,
    description: { type: 'string' },
    postgres: obj(
      {
        host: str(),
        port: { ...port, minimum: 1 },
        database: str(),
        user: str(),
        passwordRef: secretRef('Upstream password: "env:NAME" or "file:/path"'),
        tls: obj(
          {
            mode: { ...oneOf(TLS_MODES), description: 'Required unless the host is loopback' },
            caFile: str(),
            serverName: str(),
          },
          ['mode'],
        ),
        connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 600000, default: 10000 },
      },
      ['host', 'port', 'database', 'user'],
    ),
    http: obj(
      {
        baseUrl: { type: 'string', pattern: '^https?://[^/?#]+(/[^?#]*)?$', description: 'Upstream base URL, e.g. http://records.internal:8080' },
        authorizationRef: secretRef('Authorization header value the agent sends upstream: "env:NAME" or "file:/path"'),
        caFile: str(),
        maxMaskBodyBytes: { type: 'integer', minimum: 1024, maximum: 1073741824, default: 10485760, description: 'Largest JSON body buffered for masking; larger ones on masked routes are refused' },
        timeoutMs: { type: 'integer', minimum: 100, maximum: 600000, default: 30000 },
      },
      ['baseUrl'],
    ),
    ssh: obj(
      {
        host: str(),
        port: { ...port, minimum: 1, default: 22 },
        user: str(),
        privateKeyRef: secretRef('The agent\'s private key for the host: "env:NAME" or "file:/path"'),
        hostKeys: { type: 'array', items: { type: 'string', pattern: '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( .*)?$' }, minItems: 1, uniqueItems: true, description: 'The host\'s public keys ("ssh-ed25519 AAAA..."); any other key is refused' },
        connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 600000, default: 10000 },
      },
      ['host', 'user', 'privateKeyRef', 'hostKeys'],
    ),
  },
  ['name'],
  exactlyOne(['postgres', 'http', 'ssh']),
);

const listenerSpec = obj(
  {
    name,
    target: name,
    address: str('Bind address, e.g. 0.0.0.0 or 127.0.0.1'),
    port,
    agentSelector: { type: 'object', additionalProperties: { type: 'string' } },
    postgres: obj({
      allowPlaintext: { type: 'boolean', default: false },
      tls: obj({ certFile: str(), keyFile: str() }, ['certFile', 'keyFile']),
      maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 1073741824, default: 67108864 },
    }),
    http: obj({
      allowPlaintext: { type: 'boolean', default: false },
      tls: obj({ certFile: str(), keyFile: str() }, ['certFile', 'keyFile']),
      maxRequestBytes: { type: 'integer', minimum: 1024, maximum: 1073741824, default: 10485760 },
    }),
    ssh: obj({ hostKeyFile: str('Path of the agent\'s SSH host private key') }, ['hostKeyFile']),
  },
  ['name', 'target', 'address', 'port'],
  exactlyOne(['postgres', 'http', 'ssh']),
);

const issuer = obj(
  {
    issuer: { type: 'string', pattern: '^https?://', description: 'an issuer URL' },
    audiences: { ...strings, minItems: 1 },
    audience: str(),
    groupsClaim: { ...str('Claim holding groups; dot paths allowed'), default: 'groups' },
    algorithms: { type: 'array', items: oneOf(JWT_ALGORITHMS), minItems: 1, uniqueItems: true },
    clockSkewSeconds: { ...uint(300), default: 30 },
    jwksUri: { type: 'string', pattern: '^https?://', description: 'a JWKS URL' },
  },
  ['issuer'],
  exactlyOne(['audiences', 'audience']),
);

const identitySpec = obj(
  {
    issuers: { type: 'array', items: issuer, minItems: 1 },
    groupMappings: {
      type: 'array',
      items: obj({ group: str(), role: name, issuer: { type: 'string', pattern: '^https?://', description: 'an issuer URL' } }, ['group', 'role']),
    },
  },
  ['issuers', 'groupMappings'],
);

const columnRule = obj(
  {
    id: ruleId,
    column: { ...str('Column name; "*" matches any run of characters') },
    phiClass: oneOf(PHI_CLASSES),
    action: oneOf(POLICY_ACTIONS),
    mask: maskSpec,
  },
  ['action'],
  exactlyOne(['column', 'phiClass']),
);

const roleSpec = obj(
  {
    name,
    description: { type: 'string' },
    targets: { ...names, minItems: 1 },
    statementKinds: {
      type: 'array',
      items: oneOf(STATEMENT_KINDS),
      uniqueItems: true,
      default: ['select', 'transaction', 'session'],
    },
    maxRows: { ...uint(), default: 0, description: '0 means no limit' },
    rowLimitAction: { ...oneOf(ROW_LIMIT_ACTIONS), default: 'truncate' },
    unknownOrigin: { enum: ['refuse', 'redact'], default: 'refuse' },
    defaultAction: { ...oneOf(POLICY_ACTIONS), default: 'deny' },
    tables: {
      type: 'array',
      items: obj(
        {
          id: ruleId,
          table: tablePattern,
          defaultAction: oneOf(POLICY_ACTIONS),
          columns: { type: 'array', items: columnRule },
        },
        ['table'],
      ),
    },
    http: obj({
      defaultAction: { enum: ['allow', 'deny'], default: 'deny' },
      routes: {
        type: 'array',
        items: obj(
          {
            id: ruleId,
            methods: { type: 'array', items: oneOf(HTTP_METHODS), uniqueItems: true, description: 'Empty or absent: any method' },
            path: { type: 'string', pattern: '^/', description: 'Path pattern: "*" matches one segment, a trailing "**" any rest' },
            action: { enum: ['allow', 'deny'] },
            masks: {
              type: 'array',
              items: obj({ path: { type: 'string', pattern: '^\\$', description: 'JSONPath subset: $.a.b, $.items[*].ssn, $..ssn' }, mask: maskSpec }, ['path', 'mask']),
            },
          },
          ['path', 'action'],
        ),
      },
    }),
    ssh: obj({
      shell: { type: 'boolean', default: false },
      exec: { type: 'boolean', default: false },
      execCommands: { ...strings, description: 'Regular expressions; when set, only matching exec commands run' },
      sftp: { type: 'boolean', default: false },
      portForwards: { ...strings, description: '"host:port" patterns local forwarding may reach ("*" wildcard)' },
    }),
  },
  ['name', 'targets'],
);

const classificationSpec = obj(
  {
    rules: {
      type: 'array',
      minItems: 1,
      items: obj(
        {
          id: ruleId,
          pattern: columnPattern,
          targets: names,
          phiClass: oneOf(PHI_CLASSES),
          tags: strings,
          defaultMask: maskSpec,
        },
        ['pattern', 'phiClass'],
      ),
    },
  },
  ['rules'],
);

const maskingStrategySpec = obj(
  {
    name,
    description: { type: 'string' },
    redact: obj({ replacement: { type: 'string', default: '[REDACTED]' } }),
    nullify: obj({}),
    partial: obj({
      keepPrefix: { ...uint(64), default: 0 },
      keepSuffix: { ...uint(64), default: 4 },
      maskChar: { ...singleChar, default: '*' },
    }),
    hash: obj(
      {
        keyRef: secretRef('HMAC key: "env:NAME" or "file:/path". Required: an unkeyed hash of an SSN is reversible'),
        outputChars: { ...uint(64), default: 0, description: 'Hex characters kept; 0 keeps the whole digest' },
        prefix: { type: 'string', default: '' },
      },
      ['keyRef'],
    ),
    generalize: obj(
      {
        date: obj({ precision: { ...oneOf(DATE_PRECISIONS), default: 'year' } }),
        number: obj({ bucketSize: { type: 'number', exclusiveMinimum: 0 }, ceiling: { type: 'number' } }, ['bucketSize']),
        prefix: obj(
          {
            keepChars: { type: 'integer', minimum: 1, maximum: 64 },
            fillChar: { ...singleChar, default: '*' },
            suppressedPrefixes: strings,
          },
          ['keepChars'],
        ),
      },
      [],
      exactlyOne(['date', 'number', 'prefix']),
    ),
    emailDomain: obj({ localReplacement: { type: 'string', default: '***' } }),
    detect: obj(
      {
        detectors: { type: 'array', items: oneOf(DETECTORS), minItems: 1, uniqueItems: true },
        customPatterns: strings,
        replacement: { type: 'string', description: 'Empty or absent: each detector writes its own placeholder, e.g. [SSN]' },
      },
      ['detectors'],
    ),
  },
  ['name'],
  exactlyOne(['redact', 'nullify', 'partial', 'hash', 'generalize', 'emailDomain', 'detect']),
);

const hhmm: Schema = { type: 'string', pattern: '^([01]\\d|2[0-3]):[0-5]\\d$', description: 'a 24-hour time "HH:MM"' };

const approvalRuleSpec = obj(
  {
    id: ruleId,
    description: { type: 'string' },
    match: obj({
      roles: names,
      targets: names,
      statementKinds: { type: 'array', items: oneOf(STATEMENT_KINDS), uniqueItems: true },
      tables: { type: 'array', items: tablePattern, uniqueItems: true },
      columns: { type: 'array', items: columnPattern, uniqueItems: true },
      phiClasses: { type: 'array', items: oneOf(PHI_CLASSES), uniqueItems: true },
      writeWithoutWhere: { type: 'boolean' },
      ddl: { type: 'boolean' },
      rowLimitExceeded: { type: 'boolean' },
      httpRoutes: { ...strings, description: 'Regular expressions over "METHOD /path" of HTTP requests' },
      sshCommands: { ...strings, description: 'Regular expressions over SSH exec commands' },
      sshShell: { type: 'boolean', description: 'holds the start of an interactive SSH shell' },
      unmask: { type: 'boolean', description: 'matches statements that return masked columns among columns/phiClasses; approval releases them unmasked' },
      time: obj(
        {
          windows: {
            type: 'array',
            minItems: 1,
            items: obj(
              {
                days: { type: 'array', items: oneOf(WEEKDAYS), uniqueItems: true },
                start: hhmm,
                end: hhmm,
                timeZone: str('IANA time zone, e.g. America/New_York'),
              },
              ['start', 'end', 'timeZone'],
            ),
          },
          outside: { type: 'boolean', default: false },
        },
        ['windows'],
      ),
    }),
    approverGroups: { ...strings, minItems: 1 },
    quorum: { type: 'integer', minimum: 1, maximum: 10, default: 1 },
    timeout: { ...duration, default: '5m' },
    scope: { ...oneOf(APPROVAL_SCOPES), default: 'once' },
    grantDuration: { ...duration, description: 'With scope grant; default 1h' },
    allowSelfApproval: { type: 'boolean', default: false },
  },
  ['id', 'match', 'approverGroups'],
);

const policyTestSpec = obj(
  {
    name: str(),
    identity: obj({ subject: str(), groups: strings, role: name }, ['subject', 'groups']),
    target: name,
    sql: str(),
    at: { type: 'string', pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:\\d{2})$', description: 'When the statement runs, for rules with time windows (default: time windows are taken to hold)' },
    expect: obj(
      {
        decision: oneOf(DECISIONS),
        maskedColumns: strings,
        deniedMatches: str('Regular expression the denial message must match'),
        approvalRule: ruleId,
      },
      ['decision'],
    ),
  },
  ['name', 'identity', 'target', 'sql', 'expect'],
);

const SPECS: Record<Kind, Schema> = {
  Target: targetSpec,
  Listener: listenerSpec,
  Identity: identitySpec,
  Role: roleSpec,
  Classification: classificationSpec,
  MaskingStrategy: maskingStrategySpec,
  ApprovalRule: approvalRuleSpec,
  PolicyTest: policyTestSpec,
};

function documentSchema(kind: Kind, spec: Schema): Schema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://warden.dev/schemas/v1/${kind}.json`,
    title: `Warden ${kind}`,
    ...obj({ apiVersion: { const: API_VERSION }, kind: { const: kind }, spec }, ['apiVersion', 'kind', 'spec']),
  };
}

/** kind → JSON Schema of a whole document of that kind. */
export const schemas: Readonly<Record<Kind, Schema>> = Object.fromEntries(
  Object.entries(SPECS).map(([kind, spec]) => [kind, documentSchema(kind as Kind, spec)]),
) as Record<Kind, Schema>;
