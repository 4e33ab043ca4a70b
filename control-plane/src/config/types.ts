/**
 * Shapes of the declarative config: documents as loaded, diagnostics, and
 * the `spec` of each kind as it looks once it has passed its JSON Schema
 * (schemas.ts is the source of truth; these mirror it for the compiler).
 */

export const API_VERSION = 'warden.dev/v1';

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  severity: Severity;
  /** Path of the file relative to the config repository root ('/' separated). */
  file: string;
  /** 1-based line, when the problem can be pinned to one. */
  line?: number;
  /** Where inside the document, e.g. "spec.tables[0].columns[2]"; "" for the whole file or document. */
  path: string;
  /** Stable, machine-readable code, e.g. "unknown-target". */
  code: string;
  message: string;
}

export type PathSegment = string | number;

/** One YAML document of the config repository. */
export interface ConfigDocument {
  apiVersion: string;
  kind: string;
  spec: unknown;
  file: string;
  /** 0-based position of the document within its file. */
  index: number;
  /** 1-based line where the document's content starts. */
  line: number;
  /**
   * Line of a value inside the document (path from the document root, e.g.
   * ['spec', 'tables', 0]). Optional so callers that build documents without
   * YAML source (the agent's single-file mode) can still compile.
   */
  lineAt?: (path: readonly PathSegment[]) => number | undefined;
  /** Problems found while parsing; a document with an error here is not validated further. */
  problems?: Diagnostic[];
}

// ---------------------------------------------------------------- enums as written in YAML

export const TLS_MODES = ['disable', 'require', 'verify-full'] as const;
export const JWT_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export const POLICY_ACTIONS = ['allow', 'mask', 'deny'] as const;
export const ROW_LIMIT_ACTIONS = ['truncate', 'error'] as const;
export const STATEMENT_KINDS = [
  'select', 'insert', 'update', 'delete', 'merge', 'ddl', 'truncate', 'copy-out',
  'copy-in', 'dcl', 'transaction', 'session', 'explain', 'call', 'maintenance', 'other',
] as const;
export const PHI_CLASSES = [
  'none', 'direct-identifier', 'quasi-identifier', 'clinical', 'sensitive', 'financial', 'free-text',
] as const;
export const DETECTORS = ['ssn', 'phone', 'email', 'mrn', 'date', 'ip_address', 'url', 'name'] as const;
export const DATE_PRECISIONS = ['year', 'month', 'day'] as const;
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export const APPROVAL_SCOPES = ['once', 'grant'] as const;
export const DECISIONS = ['allow', 'mask', 'deny', 'hold'] as const;
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export type TlsModeName = (typeof TLS_MODES)[number];
export type JwtAlgorithmName = (typeof JWT_ALGORITHMS)[number];
export type PolicyActionName = (typeof POLICY_ACTIONS)[number];
export type RowLimitActionName = (typeof ROW_LIMIT_ACTIONS)[number];
export type StatementKindName = (typeof STATEMENT_KINDS)[number];
export type PhiClassName = (typeof PHI_CLASSES)[number];
export type DetectorName = (typeof DETECTORS)[number];
export type DatePrecisionName = (typeof DATE_PRECISIONS)[number];
export type WeekdayName = (typeof WEEKDAYS)[number];
export type ApprovalScopeName = (typeof APPROVAL_SCOPES)[number];
export type DecisionName = (typeof DECISIONS)[number];
export type HttpMethodName = (typeof HTTP_METHODS)[number];

// ---------------------------------------------------------------- specs

export interface HttpTargetSpec {
  baseUrl: string;
  authorizationRef?: string;
  caFile?: string;
  maxMaskBodyBytes?: number;
  timeoutMs?: number;
}

export interface SshTargetSpec {
  host: string;
  port?: number;
  user: string;
  privateKeyRef: string;
  hostKeys: string[];
  connectTimeoutMs?: number;
}

/** Exactly one of postgres / http / ssh is set (the schema's oneOf). */
export interface TargetSpec {
  name: string;
  description?: string;
  http?: HttpTargetSpec;
  ssh?: SshTargetSpec;
  postgres?: {
    host: string;
    port: number;
    database: string;
    user: string;
    passwordRef?: string;
    tls?: { mode: TlsModeName; caFile?: string; serverName?: string };
    connectTimeoutMs?: number;
  };
}

export interface ListenerSpec {
  name: string;
  target: string;
  address: string;
  port: number;
  agentSelector?: Record<string, string>;
  /** Exactly one of postgres / http / ssh is set (the schema's oneOf). */
  postgres?: {
    allowPlaintext?: boolean;
    tls?: { certFile: string; keyFile: string };
    maxMessageBytes?: number;
  };
  http?: { allowPlaintext?: boolean; tls?: { certFile: string; keyFile: string }; maxRequestBytes?: number };
  ssh?: { hostKeyFile: string };
}

export interface IssuerSpec {
  issuer: string;
  audiences?: string[];
  audience?: string;
  groupsClaim?: string;
  algorithms?: JwtAlgorithmName[];
  clockSkewSeconds?: number;
  jwksUri?: string;
}

export interface GroupMappingSpec {
  group: string;
  role: string;
  issuer?: string;
}

export interface IdentitySpec {
  issuers: IssuerSpec[];
  groupMappings: GroupMappingSpec[];
}

export type MaskParamValue = string | number | boolean;

export interface MaskSpecSpec {
  strategy: string;
  params?: Record<string, MaskParamValue>;
}

export interface ColumnRuleSpec {
  id?: string;
  column?: string;
  phiClass?: PhiClassName;
  action: PolicyActionName;
  mask?: MaskSpecSpec;
}

export interface TableRuleSpec {
  id?: string;
  table: string;
  defaultAction?: PolicyActionName;
  columns?: ColumnRuleSpec[];
}

export interface RoleSpec {
  name: string;
  description?: string;
  targets: string[];
  statementKinds?: StatementKindName[];
  maxRows?: number;
  rowLimitAction?: RowLimitActionName;
  unknownOrigin?: 'refuse' | 'redact';
  defaultAction?: PolicyActionName;
  /** Absent in a document means none (the model fills in []). */
  tables: TableRuleSpec[];
  http?: {
    defaultAction?: 'allow' | 'deny';
    routes?: Array<{ id?: string; methods?: HttpMethodName[]; path: string; action: 'allow' | 'deny'; masks?: Array<{ path: string; mask: MaskSpecSpec }> }>;
  };
  ssh?: { shell?: boolean; exec?: boolean; execCommands?: string[]; sftp?: boolean; portForwards?: string[] };
}

export interface ClassificationRuleSpec {
  id?: string;
  pattern: string;
  targets?: string[];
  phiClass: PhiClassName;
  tags?: string[];
  defaultMask?: MaskSpecSpec;
}

export interface ClassificationSpec {
  rules: ClassificationRuleSpec[];
}

export interface MaskingStrategySpec {
  name: string;
  description?: string;
  redact?: { replacement?: string };
  nullify?: Record<string, never>;
  partial?: { keepPrefix?: number; keepSuffix?: number; maskChar?: string };
  hash?: { keyRef: string; outputChars?: number; prefix?: string };
  generalize?: {
    date?: { precision?: DatePrecisionName };
    number?: { bucketSize: number; ceiling?: number };
    prefix?: { keepChars: number; fillChar?: string; suppressedPrefixes?: string[] };
  };
  emailDomain?: { localReplacement?: string };
  detect?: { detectors: DetectorName[]; customPatterns?: string[]; replacement?: string };
}

export interface TimeWindowSpec {
  days?: WeekdayName[];
  start: string;
  end: string;
  timeZone: string;
}

export interface ApprovalMatchSpec {
  roles?: string[];
  targets?: string[];
  statementKinds?: StatementKindName[];
  tables?: string[];
  columns?: string[];
  phiClasses?: PhiClassName[];
  writeWithoutWhere?: boolean;
  ddl?: boolean;
  rowLimitExceeded?: boolean;
  unmask?: boolean;
  httpRoutes?: string[];
  sshCommands?: string[];
  sshShell?: boolean;
  time?: { windows: TimeWindowSpec[]; outside?: boolean };
}

export interface ApprovalRuleSpec {
  id: string;
  description?: string;
  match: ApprovalMatchSpec;
  approverGroups: string[];
  quorum?: number;
  timeout?: string;
  scope?: ApprovalScopeName;
  grantDuration?: string;
  allowSelfApproval?: boolean;
}

export interface PolicyTestSpec {
  name: string;
  identity: { subject: string; groups: string[]; role?: string };
  target: string;
  sql: string;
  at?: string;
  expect: {
    decision: DecisionName;
    maskedColumns?: string[];
    deniedMatches?: string;
    approvalRule?: string;
  };
}

/** A policy test as handed to the test runner: defaults filled, location kept for reporting. */
export interface PolicyTestCase {
  name: string;
  file: string;
  line: number;
  identity: { subject: string; groups: string[]; role?: string };
  target: string;
  sql: string;
  at?: string;
  expect: {
    decision: DecisionName;
    maskedColumns: string[];
    deniedMatches?: string;
    approvalRule?: string;
  };
}

export interface SpecByKind {
  Target: TargetSpec;
  Listener: ListenerSpec;
  Identity: IdentitySpec;
  Role: RoleSpec;
  Classification: ClassificationSpec;
  MaskingStrategy: MaskingStrategySpec;
  ApprovalRule: ApprovalRuleSpec;
  PolicyTest: PolicyTestSpec;
}

export type Kind = keyof SpecByKind;

export const KINDS: readonly Kind[] = [
  'Target', 'Listener', 'Identity', 'Role', 'Classification', 'MaskingStrategy', 'ApprovalRule', 'PolicyTest',
];
