import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { create, equals, fromBinary, fromJson, toBinary, toJson, type DescMessage } from '@bufbuild/protobuf';
import { isReflectList, isReflectMap, isReflectMessage, reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgentMessageSchema,
  AgentService,
  ApprovalOutcome,
  ApprovalRecordSchema,
  ApprovalScope,
  AuditEventSchema,
  ControlMessageSchema,
  DatePrecision,
  EnrollRequestSchema,
  HashAlgorithm,
  HelloSchema,
  JwtAlgorithm,
  PhiClass,
  PolicyAction,
  PolicyBundleSchema,
  PostgresTlsMode,
  RowLimitAction,
  UnknownOriginAction,
  SessionEndReason,
  StatementDecision,
  StatementKind,
  StatementProtocol,
  Weekday,
  addGrpcService,
  createGrpcClient,
  grpcServiceDefinition,
  helloSignedBytes,
  type AgentMessage,
  type ApprovalRecord,
  type AuditEvent,
  type ControlMessage,
  type EnrollRequest,
  type EnrollResponse,
  type GrpcServiceClient,
  type PolicyBundle,
} from '../../proto/src/index.js';

type AgentClient = GrpcServiceClient<typeof AgentService>;

const COMMITTED_AT = new Date('2025-03-04T05:06:07.000Z');
const COMPILED_AT = new Date('2025-03-04T05:06:09.500Z');

/** A bundle that sets every field of every policy message at least once. */
function fullBundle(): PolicyBundle {
  return create(PolicyBundleSchema, {
    schemaVersion: 1,
    version: '3f786850e387550fdab836ed7e6dc881de23001b',
    author: { name: 'Ada Author', email: 'ada@example.org' },
    committer: { name: 'Cy Committer', email: 'cy@example.org' },
    message: 'Mask SSNs for analysts\n\nTicket SEC-42',
    committedAt: timestampFromDate(COMMITTED_AT),
    compiledAt: timestampFromDate(COMPILED_AT),
    compilerVersion: 'warden-cp 0.1.0',
    targets: [
      {
        name: 'ehr-primary',
        description: 'EHR replica',
        kind: {
          case: 'postgres',
          value: {
            host: 'db.internal',
            port: 5432,
            database: 'ehr',
            user: 'warden_reader',
            passwordRef: 'env:EHR_DB_PASSWORD',
            tls: { mode: PostgresTlsMode.VERIFY_FULL, caFile: '/etc/warden/ca.pem', serverName: 'db.internal' },
            connectTimeoutMs: 10_000,
          },
        },
      },
      {
        name: 'records-api',
        kind: {
          case: 'http',
          value: { baseUrl: 'https://records.internal:8443/v2', authorizationRef: 'env:RECORDS_TOKEN', caFile: '/etc/warden/records-ca.pem', maxMaskBodyBytes: 10_485_760, timeoutMs: 30_000 },
        },
      },
      {
        name: 'lab-host',
        kind: {
          case: 'ssh',
          value: { host: 'lab.internal', port: 22, user: 'warden', privateKeyRef: 'file:/run/secrets/lab-key', hostKeys: ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'], connectTimeoutMs: 5000 },
        },
      },
    ],
    listeners: [
      {
        name: 'pg-east',
        target: 'ehr-primary',
        address: '0.0.0.0',
        port: 6432,
        agentSelector: { site: 'east', tier: 'prod' },
        protocol: {
          case: 'postgres',
          value: {
            allowPlaintext: true,
            tls: { certFile: '/etc/warden/listener.crt', keyFile: '/etc/warden/listener.key' },
            maxMessageBytes: 64 * 1024 * 1024,
          },
        },
      },
      {
        name: 'records-https',
        target: 'records-api',
        address: '0.0.0.0',
        port: 8443,
        protocol: { case: 'http', value: { allowPlaintext: true, tls: { certFile: '/etc/warden/api.crt', keyFile: '/etc/warden/api.key' }, maxRequestBytes: 1_048_576 } },
      },
      { name: 'lab-ssh', target: 'lab-host', address: '0.0.0.0', port: 2222, protocol: { case: 'ssh', value: { hostKeyFile: '/etc/warden/ssh_host_ed25519_key' } } },
    ],
    identity: {
      issuers: [
        {
          issuer: 'https://idp.example.org/realms/health',
          audiences: ['warden', 'warden-dev'],
          groupsClaim: 'realm_access.roles',
          algorithms: [JwtAlgorithm.RS256, JwtAlgorithm.EDDSA],
          clockSkewSeconds: 30,
          jwksUri: 'https://idp.example.org/realms/health/certs',
        },
      ],
      groupMappings: [{ group: 'data-analysts', role: 'analyst', issuer: 'https://idp.example.org/realms/health' }],
    },
    roles: [
      {
        name: 'analyst',
        description: 'Read-only, de-identified',
        targets: ['ehr-primary'],
        statementKinds: [StatementKind.SELECT, StatementKind.EXPLAIN],
        tables: [
          {
            id: 'analyst/patients',
            table: 'public.patients',
            defaultAction: PolicyAction.ALLOW,
            columns: [
              {
                id: 'analyst/patients/ssn',
                selector: { case: 'column', value: 'ssn' },
                action: PolicyAction.MASK,
                mask: { strategy: 'ssn-last4', params: { keep_suffix: '4' } },
              },
              {
                id: 'analyst/patients/sensitive',
                selector: { case: 'phiClass', value: PhiClass.SENSITIVE },
                action: PolicyAction.DENY,
              },
            ],
          },
        ],
        defaultAction: PolicyAction.DENY,
        maxRows: 10_000,
        rowLimitAction: RowLimitAction.TRUNCATE,
        unknownOrigin: UnknownOriginAction.REDACT,
        httpRoutes: [
          {
            id: 'analyst/http/patients',
            methods: ['GET'],
            path: '/api/patients/*',
            action: PolicyAction.ALLOW,
            masks: [{ path: '$.patients[*].ssn', mask: { strategy: 'ssn-last4' } }],
          },
        ],
        httpDefaultAction: PolicyAction.DENY,
        ssh: { shell: true, exec: true, execCommands: ['^ls( |$)'], sftp: true, portForwards: ['db.internal:5432'] },
      },
    ],
    classifications: [
      {
        id: 'cls/ssn',
        pattern: '*.*.ssn',
        targets: ['ehr-primary'],
        phiClass: PhiClass.DIRECT_IDENTIFIER,
        tags: ['hipaa:ssn'],
        defaultMask: { strategy: 'redact', params: { replacement: '[SSN]' } },
      },
    ],
    maskingStrategies: [
      { name: 'redact', description: 'Replace whole value', kind: { case: 'redact', value: { replacement: '[REDACTED]' } } },
      { name: 'null', kind: { case: 'nullify', value: {} } },
      { name: 'ssn-last4', kind: { case: 'partial', value: { keepPrefix: 1, keepSuffix: 4, maskChar: '*' } } },
      {
        name: 'hash',
        kind: {
          case: 'hash',
          value: { algorithm: HashAlgorithm.HMAC_SHA256, keyRef: 'env:WARDEN_HASH_KEY', outputChars: 16, prefix: 'h:' },
        },
      },
      {
        name: 'dob-year',
        kind: { case: 'generalize', value: { method: { case: 'date', value: { precision: DatePrecision.YEAR } } } },
      },
      {
        name: 'age-bucket',
        kind: { case: 'generalize', value: { method: { case: 'number', value: { bucketSize: 5, ceiling: 90 } } } },
      },
      {
        name: 'zip3',
        kind: {
          case: 'generalize',
          value: { method: { case: 'prefix', value: { keepChars: 3, fillChar: '0', suppressedPrefixes: ['036', '692'] } } },
        },
      },
      { name: 'email-domain', kind: { case: 'emailDomain', value: { localReplacement: '***' } } },
      {
        name: 'detect',
        kind: {
          case: 'detect',
          value: { detectors: ['ssn', 'phone', 'email'], customPatterns: ['MRN-[0-9]{8}'], replacement: '[PHI]' },
        },
      },
    ],
    approvalRules: [
      {
        id: 'approve/bulk-write',
        description: 'Unbounded writes after hours need two approvers',
        match: {
          roles: ['analyst'],
          targets: ['ehr-primary'],
          statementKinds: [StatementKind.UPDATE, StatementKind.DELETE],
          tables: ['public.*'],
          columns: ['public.patients.ssn'],
          phiClasses: [PhiClass.DIRECT_IDENTIFIER],
          writeWithoutWhere: true,
          ddl: true,
          rowLimitExceeded: true,
          unmask: true,
          httpRoutes: ['^DELETE /api/'],
          sshCommands: ['^rm '],
          sshShell: true,
          time: {
            windows: [
              {
                days: [Weekday.MONDAY, Weekday.FRIDAY],
                startMinute: 9 * 60,
                endMinute: 17 * 60,
                timeZone: 'America/New_York',
              },
            ],
            outside: true,
          },
        },
        approverGroups: ['dba', 'privacy-office'],
        quorum: 2,
        timeout: { seconds: 900n },
        scope: ApprovalScope.GRANT,
        grantDuration: { seconds: 3600n, nanos: 500 },
        allowSelfApproval: true,
      },
    ],
  });
}

/** "Type.field" for every field set anywhere in the message tree (well-known types excluded). */
function setFields(message: ReflectMessage, into = new Set<string>()): Set<string> {
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    into.add(`${message.desc.typeName}.${field.name}`);
    const value = message.get(field);
    if (isReflectMessage(value)) setFields(value, into);
    else if (isReflectList(value)) for (const item of value) if (isReflectMessage(item)) setFields(item, into);
    else if (isReflectMap(value)) for (const item of value.values()) if (isReflectMessage(item)) setFields(item, into);
  }
  return new Set([...into].filter((name) => !name.startsWith('google.protobuf.')));
}

/** "Type.field" for every field of every message reachable from `desc` (well-known types excluded). */
function declaredFields(desc: DescMessage, into = new Set<string>(), visited = new Set<string>()): Set<string> {
  if (visited.has(desc.typeName) || desc.typeName.startsWith('google.protobuf.')) return into;
  visited.add(desc.typeName);
  for (const field of desc.fields) {
    into.add(`${desc.typeName}.${field.name}`);
    const child =
      field.fieldKind === 'message' ||
      (field.fieldKind === 'list' && field.listKind === 'message') ||
      (field.fieldKind === 'map' && field.mapKind === 'message')
        ? field.message
        : undefined;
    if (child) declaredFields(child, into, visited);
  }
  return into;
}

describe('PolicyBundle encoding', () => {
  it('fixture covers every field of every policy message', () => {
    const set = setFields(reflect(PolicyBundleSchema, fullBundle()));
    const missing = [...declaredFields(PolicyBundleSchema)].filter((name) => !set.has(name));
    expect(missing).toEqual([]);
  });

  it('round-trips through binary and JSON unchanged', () => {
    const bundle = fullBundle();
    const bytes = toBinary(PolicyBundleSchema, bundle);
    const decoded = fromBinary(PolicyBundleSchema, bytes);
    expect(equals(PolicyBundleSchema, decoded, bundle)).toBe(true);
    expect(decoded).toEqual(bundle);
    expect(toBinary(PolicyBundleSchema, decoded)).toEqual(bytes);

    const fromJsonBundle = fromJson(PolicyBundleSchema, toJson(PolicyBundleSchema, bundle));
    expect(equals(PolicyBundleSchema, fromJsonBundle, bundle)).toBe(true);

    // Spot checks through the generated types.
    expect(decoded.committedAt && timestampDate(decoded.committedAt)).toEqual(COMMITTED_AT);
    const target = decoded.targets[0]?.kind;
    expect(target?.case).toBe('postgres');
    if (target?.case === 'postgres') expect(target.value.passwordRef).toBe('env:EHR_DB_PASSWORD');
    const ssn = decoded.roles[0]?.tables[0]?.columns[0];
    expect(ssn?.selector).toEqual({ case: 'column', value: 'ssn' });
    expect(ssn?.mask?.params).toEqual({ keep_suffix: '4' });
    const age = decoded.maskingStrategies.find((s) => s.name === 'age-bucket')?.kind;
    expect(age?.case === 'generalize' && age.value.method.case === 'number' && age.value.method.value.ceiling).toBe(90);
    expect(decoded.approvalRules[0]?.grantDuration?.seconds).toBe(3600n);
  });
});

describe('grpc service definition', () => {
  it('derives paths and streaming flags from the descriptor', () => {
    const definition = grpcServiceDefinition(AgentService);
    expect(Object.keys(definition)).toEqual(['enroll', 'connect']);
    expect(definition.enroll).toMatchObject({
      path: '/warden.v1.AgentService/Enroll',
      requestStream: false,
      responseStream: false,
      originalName: 'Enroll',
    });
    expect(definition.connect).toMatchObject({
      path: '/warden.v1.AgentService/Connect',
      requestStream: true,
      responseStream: true,
      originalName: 'Connect',
    });
    const bytes = definition.enroll.requestSerialize({ agentName: 'a1', labels: { site: 'east' } });
    expect(Buffer.isBuffer(bytes)).toBe(true);
    const request = definition.enroll.requestDeserialize(bytes) as EnrollRequest;
    expect(request.$typeName).toBe('warden.v1.EnrollRequest');
    expect(request.labels).toEqual({ site: 'east' });
    expect(() => definition.enroll.requestSerialize(create(HelloSchema, { agentId: 'x' }))).toThrow(
      /expected a warden.v1.EnrollRequest message/,
    );
  });
});

// ---------------------------------------------------------------------------
// A tiny control plane and agent speaking AgentService over a real channel.
// ---------------------------------------------------------------------------

const ENROLLMENT_TOKEN = 'enroll-token-123';
const APPROVAL_KEY_ID = 'approval-2025';
const BUNDLE_KEY_ID = 'bundle-2025';

function spki(key: KeyObject): Uint8Array {
  return new Uint8Array(key.export({ format: 'der', type: 'spki' }));
}

function publicKeyFromSpki(der: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });
}

interface ServerLog {
  enrolled: EnrollRequest[];
  received: AgentMessage[];
}

/** Starts a control plane stub on 127.0.0.1:0 and resolves with its port. */
async function startControlPlane(credentials: grpc.ServerCredentials) {
  const bundleKeys = generateKeyPairSync('ed25519');
  const approvalKeys = generateKeyPairSync('ed25519');
  const agents = new Map<string, KeyObject>();
  const log: ServerLog = { enrolled: [], received: [] };
  const controlPlane = {
    id: 'cp-test',
    version: '0.1.0',
    bundleSigningKeys: [{ keyId: BUNDLE_KEY_ID, publicKey: spki(bundleKeys.publicKey) }],
    approvalSigningKeys: [{ keyId: APPROVAL_KEY_ID, publicKey: spki(approvalKeys.publicKey) }],
    heartbeatInterval: { seconds: 15n },
  };
  const bundle = fullBundle();

  const server = new grpc.Server();
  addGrpcService(server, AgentService, {
    enroll(call, callback) {
      const request = call.request;
      log.enrolled.push(request);
      if (request.enrollmentToken !== ENROLLMENT_TOKEN) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: 'unknown enrollment token' });
        return;
      }
      const agentId = `agt-${agents.size + 1}`;
      agents.set(agentId, publicKeyFromSpki(request.publicKey));
      callback(null, { agentId, controlPlane });
    },

    connect(call) {
      const nonce = new Uint8Array(randomBytes(32));
      let agentId: string | undefined;
      call.write({ kind: { case: 'challenge', value: { nonce } } });
      call.on('data', (message: AgentMessage) => {
        log.received.push(message);
        const { kind } = message;
        if (agentId === undefined) {
          const key = kind.case === 'hello' ? agents.get(kind.value.agentId) : undefined;
          if (kind.case !== 'hello' || !key || !verify(null, helloSignedBytes(kind.value.agentId, nonce), key, kind.value.signature)) {
            call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'hello signature does not verify' });
            return;
          }
          agentId = kind.value.agentId;
          call.write({
            kind: {
              case: 'welcome',
              value: { controlPlane, serverTime: timestampFromDate(new Date()), desiredBundleVersion: bundle.version },
            },
          });
          if (kind.value.appliedBundleVersion !== bundle.version) {
            const bytes = toBinary(PolicyBundleSchema, bundle);
            const signature = new Uint8Array(sign(null, bytes, bundleKeys.privateKey));
            // A message built with create() goes through the adapter as-is.
            call.write(
              create(ControlMessageSchema, {
                kind: {
                  case: 'bundleUpdate',
                  value: { version: bundle.version, bundle: bytes, signature, keyId: BUNDLE_KEY_ID },
                },
              }),
            );
          }
          return;
        }
        switch (kind.case) {
          case 'auditBatch': {
            const last = new Map<string, bigint>();
            for (const bytes of kind.value.events) {
              const event = fromBinary(AuditEventSchema, bytes);
              last.set(event.sessionId, event.sequence);
            }
            for (const [sessionId, upToSequence] of last) {
              call.write({ kind: { case: 'auditAck', value: { sessionId, upToSequence } } });
            }
            break;
          }
          case 'approvalRequest': {
            const request = kind.value;
            const approvers = [
              {
                identity: { subject: 'dba-1', issuer: 'https://idp.example.org', groups: ['dba'], tokenId: 'jti-9' },
                decidedAt: timestampFromDate(new Date('2025-03-04T06:00:00Z')),
                comment: 'ok for ticket SEC-42',
                vote: ApprovalOutcome.APPROVE,
              },
            ];
            const record = toBinary(
              ApprovalRecordSchema,
              create(ApprovalRecordSchema, {
                requestId: request.id,
                agentId,
                sessionId: request.sessionId,
                statementHash: request.statementHash,
                ruleId: request.ruleId,
                bundleVersion: request.bundleVersion,
                ...(request.identity ? { requester: request.identity } : {}),
                outcome: ApprovalOutcome.APPROVE,
                approvers,
                scope: ApprovalScope.ONCE,
                decidedAt: timestampFromDate(new Date('2025-03-04T06:00:01Z')),
              }),
            );
            call.write({
              kind: {
                case: 'approvalDecision',
                value: {
                  requestId: request.id,
                  outcome: ApprovalOutcome.APPROVE,
                  approvers,
                  signedRecord: record,
                  signature: new Uint8Array(sign(null, record, approvalKeys.privateKey)),
                  keyId: APPROVAL_KEY_ID,
                },
              },
            });
            break;
          }
          default:
            break;
        }
      });
      call.on('end', () => call.end());
    },
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  return { server, port, log, bundle };
}

function enroll(client: AgentClient, request: EnrollRequest | Parameters<AgentClient['enroll']>[0]): Promise<EnrollResponse> {
  return new Promise((resolve, reject) => {
    client.enroll(request, { deadline: Date.now() + 10_000 }, (error, response) => {
      if (error) reject(error);
      else if (response) resolve(response);
      else reject(new Error('empty response'));
    });
  });
}

const AUDIT_EVENTS: AuditEvent[] = [
  create(AuditEventSchema, {
    sessionId: '01956a1e-7c00-7000-8000-000000000001',
    sequence: 1n,
    kind: {
      case: 'sessionStart',
      value: {
        identity: { subject: 'agent-7', issuer: 'https://idp.example.org', groups: ['data-analysts'], tokenId: 'jti-1' },
        role: 'analyst',
        clientAddress: '10.0.0.5:51234',
        agentId: 'agt-1',
        target: 'ehr-primary',
        listener: 'pg-east',
        bundleVersion: '3f786850e387550fdab836ed7e6dc881de23001b',
        startedAt: timestampFromDate(new Date('2025-03-04T06:00:00Z')),
        tls: true,
        applicationName: 'claude-agent',
      },
    },
  }),
  create(AuditEventSchema, {
    sessionId: '01956a1e-7c00-7000-8000-000000000001',
    sequence: 2n,
    kind: {
      case: 'statement',
      value: {
        text: 'SELECT name, ssn FROM public.patients WHERE id = $1',
        parameters: [{ text: '42' }, { isNull: true }],
        decision: StatementDecision.MASK,
        ruleIds: ['analyst/patients/ssn'],
        maskedColumns: ['public.patients.ssn'],
        rowCount: 1n,
        resultSha256: new Uint8Array(32).fill(7),
        sample: {
          columns: ['name', 'ssn'],
          rows: [{ cells: [{ text: 'Jane Doe' }, { text: '*****6789', masked: true }] }],
          truncated: false,
        },
        error: { sqlstate: '01000', message: 'warning only' },
        startedAt: timestampFromDate(new Date('2025-03-04T06:00:01Z')),
        durationUs: 1234n,
        kind: StatementKind.SELECT,
        protocol: StatementProtocol.EXTENDED,
        commandTag: 'SELECT 1',
      },
    },
  }),
  create(AuditEventSchema, {
    sessionId: '01956a1e-7c00-7000-8000-000000000001',
    sequence: 3n,
    kind: {
      case: 'sessionEnd',
      value: {
        reason: SessionEndReason.CLIENT_TERMINATE,
        endedAt: timestampFromDate(new Date('2025-03-04T06:00:02Z')),
        statementCount: 1n,
      },
    },
  }),
  create(AuditEventSchema, {
    sessionId: '01956a1e-7c00-7000-8000-000000000002',
    sequence: 1n,
    kind: {
      case: 'authRefused',
      value: { agentId: 'agt-1', listener: 'pg-east', clientAddress: '10.0.0.9:40000', sqlstate: '28000', reason: 'token expired' },
    },
  }),
];

interface AgentTranscript {
  received: ControlMessage[];
  /** The client channel's view of transport security. */
  authContext?: ReturnType<grpc.ClientDuplexStream<unknown, unknown>['getAuthContext']>;
  bundle?: PolicyBundle;
  approvalRecord?: ApprovalRecord;
}

/**
 * Plays the agent side of Connect: answers the challenge, verifies and acks the
 * bundle, sends an audit batch and an approval request, then half-closes once
 * the audit acks and the approval decision are in.
 */
function runAgent(client: AgentClient, agentId: string, agentKey: KeyObject, enrolled: EnrollResponse): Promise<AgentTranscript> {
  const transcript: AgentTranscript = { received: [] };
  const bundleKey = publicKeyFromSpki(enrolled.controlPlane?.bundleSigningKeys[0]?.publicKey ?? new Uint8Array());
  const approvalKey = publicKeyFromSpki(enrolled.controlPlane?.approvalSigningKeys[0]?.publicKey ?? new Uint8Array());
  const stream = client.connect({ deadline: Date.now() + 15_000 });
  let acks = 0;
  let decided = false;

  return new Promise((resolve, reject) => {
    const finishIfDone = () => {
      if (acks === 2 && decided) stream.end();
    };
    stream.on('data', (message: ControlMessage) => {
      transcript.authContext ??= stream.getAuthContext();
      transcript.received.push(message);
      const { kind } = message;
      switch (kind.case) {
        case 'challenge':
          stream.write({
            kind: {
              case: 'hello',
              value: {
                agentId,
                agentVersion: '0.1.0',
                appliedBundleVersion: 'previous-sha',
                signature: new Uint8Array(sign(null, helloSignedBytes(agentId, kind.value.nonce), agentKey)),
              },
            },
          });
          break;
        case 'bundleUpdate': {
          const ok = verify(null, kind.value.bundle, bundleKey, kind.value.signature);
          transcript.bundle = fromBinary(PolicyBundleSchema, kind.value.bundle);
          stream.write(
            create(AgentMessageSchema, {
              kind: {
                case: 'bundleAck',
                value: { version: kind.value.version, ok, appliedAt: timestampFromDate(new Date()) },
              },
            }),
          );
          stream.write({ kind: { case: 'auditBatch', value: { events: AUDIT_EVENTS.map((e) => toBinary(AuditEventSchema, e)) } } });
          stream.write({
            kind: {
              case: 'approvalRequest',
              value: {
                id: '01956a1e-7c00-7000-8000-0000000000a1',
                sessionId: '01956a1e-7c00-7000-8000-000000000001',
                identity: { subject: 'agent-7', issuer: 'https://idp.example.org', groups: ['data-analysts'] },
                role: 'analyst',
                agentId,
                target: 'ehr-primary',
                statementText: 'DELETE FROM public.patients',
                statementHash: new Uint8Array(32).fill(1),
                statementKind: StatementKind.DELETE,
                touchedColumns: ['public.patients.id'],
                ruleId: 'approve/bulk-write',
                bundleVersion: kind.value.version,
                requestedAt: timestampFromDate(new Date('2025-03-04T06:00:00Z')),
                expiresAt: timestampFromDate(new Date('2025-03-04T06:15:00Z')),
              },
            },
          });
          break;
        }
        case 'auditAck':
          acks += 1;
          finishIfDone();
          break;
        case 'approvalDecision':
          if (!verify(null, kind.value.signedRecord, approvalKey, kind.value.signature)) {
            reject(new Error('approval signature did not verify'));
            return;
          }
          transcript.approvalRecord = fromBinary(ApprovalRecordSchema, kind.value.signedRecord);
          decided = true;
          finishIfDone();
          break;
        default:
          break;
      }
    });
    stream.on('error', reject);
    stream.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) resolve(transcript);
      else reject(new Error(`Connect ended with ${grpc.status[status.code]}: ${status.details}`));
    });
  });
}

/** Enrolls a fresh agent, runs a Connect session and checks both sides' view of it. */
async function exerciseAgentService(client: AgentClient, controlPlane: Awaited<ReturnType<typeof startControlPlane>>) {
  const agentKey = generateKeyPairSync('ed25519');
  const publicKey = spki(agentKey.publicKey);
  expect(publicKey).toHaveLength(44);

  const enrolled = await enroll(client, {
    enrollmentToken: ENROLLMENT_TOKEN,
    agentName: 'agent-east-1',
    publicKey,
    labels: { site: 'east', tier: 'prod' },
    agentVersion: '0.1.0',
  });
  expect(enrolled.agentId).toMatch(/^agt-\d+$/);
  expect(enrolled.controlPlane?.id).toBe('cp-test');
  expect(enrolled.controlPlane?.heartbeatInterval?.seconds).toBe(15n);
  expect(enrolled.controlPlane?.bundleSigningKeys[0]?.keyId).toBe(BUNDLE_KEY_ID);

  const seenByServer = controlPlane.log.enrolled.at(-1);
  expect(seenByServer?.agentName).toBe('agent-east-1');
  expect(seenByServer?.labels).toEqual({ site: 'east', tier: 'prod' });
  expect(seenByServer?.publicKey).toEqual(publicKey);

  const before = controlPlane.log.received.length;
  const transcript = await runAgent(client, enrolled.agentId, agentKey.privateKey, enrolled);

  // Control plane -> agent, in protocol order.
  expect(transcript.received.map((m) => m.kind.case)).toEqual([
    'challenge',
    'welcome',
    'bundleUpdate',
    'auditAck',
    'auditAck',
    'approvalDecision',
  ]);
  const welcome = transcript.received[1]?.kind;
  expect(welcome?.case === 'welcome' && welcome.value.desiredBundleVersion).toBe(controlPlane.bundle.version);
  expect(transcript.bundle && equals(PolicyBundleSchema, transcript.bundle, controlPlane.bundle)).toBe(true);
  const acks = transcript.received.flatMap((m) => (m.kind.case === 'auditAck' ? [m.kind.value] : []));
  expect(acks.map((a) => [a.sessionId, a.upToSequence])).toEqual([
    ['01956a1e-7c00-7000-8000-000000000001', 3n],
    ['01956a1e-7c00-7000-8000-000000000002', 1n],
  ]);
  expect(transcript.approvalRecord).toMatchObject({
    requestId: '01956a1e-7c00-7000-8000-0000000000a1',
    agentId: enrolled.agentId,
    statementHash: new Uint8Array(32).fill(1),
    outcome: ApprovalOutcome.APPROVE,
    scope: ApprovalScope.ONCE,
    requester: { subject: 'agent-7' },
  });
  expect(transcript.approvalRecord?.approvers[0]?.comment).toBe('ok for ticket SEC-42');

  // Agent -> control plane.
  const received = controlPlane.log.received.slice(before);
  expect(received.map((m) => m.kind.case)).toEqual(['hello', 'bundleAck', 'auditBatch', 'approvalRequest']);
  const hello = received[0]?.kind;
  expect(hello?.case === 'hello' && hello.value.appliedBundleVersion).toBe('previous-sha');
  const ack = received[1]?.kind;
  expect(ack?.case === 'bundleAck' && ack.value).toMatchObject({ version: controlPlane.bundle.version, ok: true });
  const batch = received[2]?.kind;
  expect(batch?.case).toBe('auditBatch');
  if (batch?.case === 'auditBatch') {
    expect(batch.value.events).toHaveLength(AUDIT_EVENTS.length);
    batch.value.events.forEach((bytes, i) => expect(equals(AuditEventSchema, fromBinary(AuditEventSchema, bytes), AUDIT_EVENTS[i]!)).toBe(true));
  }
  return transcript;
}

describe('AgentService over insecure grpc-js', () => {
  let controlPlane: Awaited<ReturnType<typeof startControlPlane>>;
  let client: AgentClient;

  beforeAll(async () => {
    controlPlane = await startControlPlane(grpc.ServerCredentials.createInsecure());
    client = createGrpcClient(AgentService, `127.0.0.1:${controlPlane.port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    controlPlane?.server.forceShutdown();
  });

  it('enrolls (unary) and runs a Connect session (bidi)', async () => {
    const transcript = await exerciseAgentService(client, controlPlane);
    expect(transcript.authContext?.transportSecurityType).toBeUndefined();
  });

  it('surfaces handler errors as gRPC status codes', async () => {
    await expect(enroll(client, { enrollmentToken: 'wrong', agentName: 'x' })).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: 'unknown enrollment token',
    });
  });

  it('refuses a Hello whose signature does not match the enrolled key', async () => {
    const enrolled = await enroll(client, {
      enrollmentToken: ENROLLMENT_TOKEN,
      agentName: 'impostor',
      publicKey: spki(generateKeyPairSync('ed25519').publicKey),
    });
    const otherKey = generateKeyPairSync('ed25519').privateKey;
    await expect(runAgent(client, enrolled.agentId, otherKey, enrolled)).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
  });
});

describe('AgentService over TLS', () => {
  let dir: string;
  let controlPlane: Awaited<ReturnType<typeof startControlPlane>>;
  const clients: AgentClient[] = [];

  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const makeCa = (name: string) =>
    openssl(
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '1', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    );

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'warden-proto-tls-'));
    makeCa('warden-test-ca');
    makeCa('other-ca');
    openssl(
      'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1',
    );
    writeFileSync(
      join(dir, 'server.ext'),
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n',
    );
    openssl(
      'x509', '-req', '-in', 'server.csr', '-CA', 'warden-test-ca.crt', '-CAkey', 'warden-test-ca.key',
      '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '1', '-extfile', 'server.ext', '-out', 'server.crt',
    );
    const read = (name: string) => readFileSync(join(dir, name));
    controlPlane = await startControlPlane(
      grpc.ServerCredentials.createSsl(null, [{ cert_chain: read('server.crt'), private_key: read('server.key') }], false),
    );
  });

  afterAll(() => {
    for (const client of clients) client.close();
    controlPlane?.server.forceShutdown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const tlsClient = (caFile: string) => {
    const client = createGrpcClient(
      AgentService,
      `127.0.0.1:${controlPlane.port}`,
      grpc.credentials.createSsl(readFileSync(join(dir, caFile))),
    );
    clients.push(client);
    return client;
  };

  it('works over TLS when the client trusts the issuing CA', async () => {
    const transcript = await exerciseAgentService(tlsClient('warden-test-ca.crt'), controlPlane);
    expect(transcript.authContext?.transportSecurityType).toBe('ssl');
    expect(transcript.authContext?.sslPeerCertificate?.subject.CN).toBe('127.0.0.1');
  });

  it('fails when the client trusts a different CA', async () => {
    const enrolledBefore = controlPlane.log.enrolled.length;
    await expect(
      enroll(tlsClient('other-ca.crt'), { enrollmentToken: ENROLLMENT_TOKEN, agentName: 'wrong-ca' }),
    ).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
      details: expect.stringMatching(/unable to verify the first certificate/),
    });
    expect(controlPlane.log.enrolled.length).toBe(enrolledBefore);
  });

  it('fails when a plaintext client talks to the TLS port', async () => {
    const client = createGrpcClient(AgentService, `127.0.0.1:${controlPlane.port}`, grpc.credentials.createInsecure());
    clients.push(client);
    await expect(enroll(client, { enrollmentToken: ENROLLMENT_TOKEN, agentName: 'plaintext' })).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
  });
});
