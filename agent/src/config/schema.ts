/**
 * JSON Schema of the agent's single-file configuration (config/types.ts).
 * Secrets are only accepted as references; a literal password is a
 * schema error so it can never be committed by accident.
 */
const secretRef = { type: 'string', pattern: '^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$' };
const name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_.-]{0,62}$' };

const listenerTls = {
  type: 'object',
  additionalProperties: false,
  required: ['certFile', 'keyFile'],
  properties: { certFile: { type: 'string' }, keyFile: { type: 'string' } },
} as const;

/** One protocol's listener shape; the discriminator picks it by `protocol`. */
function listener(protocol: string, extra: Record<string, unknown>, required: string[] = []) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'protocol', 'address', 'port', 'target', ...required],
    properties: {
      name,
      protocol: { const: protocol },
      address: { type: 'string', minLength: 1 },
      port: { type: 'integer', minimum: 0, maximum: 65535 },
      target: name,
      ...extra,
    },
  };
}

/** One kind's target shape; the discriminator picks it by `kind`. */
function target(kind: string, extra: Record<string, unknown>, required: string[]) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'kind', ...required],
    properties: { name, kind: { const: kind }, ...extra },
  };
}

export const agentConfigSchema = {
  $id: 'https://warden.dev/schemas/agent-config.json',
  type: 'object',
  additionalProperties: false,
  required: ['agent', 'listeners', 'targets', 'identity', 'roles', 'recording'],
  properties: {
    agent: {
      type: 'object',
      additionalProperties: false,
      required: ['id'],
      properties: { id: name },
    },
    listeners: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        discriminator: { propertyName: 'protocol' },
        required: ['protocol'],
        properties: { protocol: { enum: ['postgres', 'http', 'ssh'] } },
        oneOf: [
          listener('postgres', {
            allowPlaintext: { type: 'boolean' },
            tls: listenerTls,
            maxMessageBytes: { type: 'integer', minimum: 1024, maximum: 1073741824 },
          }),
          listener('http', {
            allowPlaintext: { type: 'boolean' },
            tls: listenerTls,
            maxRequestBytes: { type: 'integer', minimum: 1024, maximum: 1073741824 },
          }),
          listener('ssh', { hostKeyFile: { type: 'string', minLength: 1 } }, ['hostKeyFile']),
        ],
      },
    },
    targets: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        discriminator: { propertyName: 'kind' },
        required: ['kind'],
        properties: { kind: { enum: ['postgres', 'http', 'ssh'] } },
        oneOf: [
          target('postgres', {
            host: { type: 'string', minLength: 1 },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            database: { type: 'string', minLength: 1 },
            user: { type: 'string', minLength: 1 },
            password: secretRef,
            tls: {
              type: 'object',
              additionalProperties: false,
              required: ['mode'],
              properties: {
                mode: { enum: ['disable', 'require', 'verify-full'] },
                caFile: { type: 'string' },
                serverName: { type: 'string' },
              },
            },
            connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 120000 },
          }, ['host', 'port', 'database', 'user']),
          target('http', {
            baseUrl: { type: 'string', pattern: '^https?://' },
            authorization: secretRef,
            caFile: { type: 'string', minLength: 1 },
            maxMaskBodyBytes: { type: 'integer', minimum: 1024, maximum: 1073741824 },
            timeoutMs: { type: 'integer', minimum: 100, maximum: 600000 },
          }, ['baseUrl']),
          target('ssh', {
            host: { type: 'string', minLength: 1 },
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            user: { type: 'string', minLength: 1 },
            privateKey: secretRef,
            hostKeys: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
            connectTimeoutMs: { type: 'integer', minimum: 100, maximum: 120000 },
          }, ['host', 'user', 'privateKey', 'hostKeys']),
        ],
      },
    },
    identity: {
      type: 'object',
      additionalProperties: false,
      required: ['issuers', 'groupMappings'],
      properties: {
        issuers: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['issuer', 'audience'],
            properties: {
              issuer: { type: 'string', pattern: '^https?://' },
              audience: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', minItems: 1, items: { type: 'string' } }] },
              groupsClaim: { type: 'string', minLength: 1 },
              algorithms: { type: 'array', minItems: 1, items: { enum: ['RS256', 'ES256', 'EdDSA'] } },
              clockSkewSeconds: { type: 'integer', minimum: 0, maximum: 300 },
            },
          },
        },
        groupMappings: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['group', 'role'],
            properties: { group: { type: 'string', minLength: 1 }, role: name },
          },
        },
      },
    },
    roles: {
      type: 'array',
      items: {
        type: 'object',
        // Policy fields follow the Role kind's schema and are checked by the shared compiler.
        required: ['name', 'targets'],
        properties: { name, targets: { type: 'array', items: name } },
      },
    },
    classification: { type: 'array' },
    masking: { type: 'array' },
    enforcement: { enum: ['policy', 'relay-only'] },
    recording: {
      type: 'object',
      additionalProperties: false,
      required: ['kind', 'path'],
      properties: { kind: { const: 'jsonl' }, path: { type: 'string', minLength: 1 }, sampleRows: { type: 'integer', minimum: 0, maximum: 10000 } },
    },
    ops: {
      type: 'object',
      additionalProperties: false,
      required: ['address', 'port'],
      properties: { address: { type: 'string', minLength: 1 }, port: { type: 'integer', minimum: 0, maximum: 65535 } },
    },
    shutdown: {
      type: 'object',
      additionalProperties: false,
      required: ['graceSeconds'],
      properties: { graceSeconds: { type: 'integer', minimum: 0, maximum: 3600 } },
    },
  },
} as const;
