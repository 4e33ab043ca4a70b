/**
 * Compiles validated documents into a PolicyBundle. The bundle is fully
 * resolved (see bundle.proto): every default is written out here so agents
 * never apply defaults of their own, and a bundle only exists when the
 * repository has no errors at all.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { durationFromMs, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  ApprovalRuleSchema,
  ApprovalScope,
  ClassificationRuleSchema,
  ColumnRuleSchema,
  DatePrecision,
  HashAlgorithm,
  JwtAlgorithm,
  MaskingStrategySchema,
  MaskSpecSchema,
  PhiClass,
  PolicyAction,
  PolicyBundleSchema,
  RoleSchema,
  RowLimitAction,
  UnknownOriginAction,
  StatementKind,
  TableRuleSchema,
  Weekday,
  type ApprovalRule,
  type ColumnRule,
  type MaskingStrategy,
  type MaskSpec,
  type PolicyBundle,
  type Role,
} from '../../../proto/src/index.js';
import { BUILTIN_STRATEGIES } from './builtins.js';
import {
  classificationIds,
  columnRuleId,
  httpRouteId,
  normalizeMask,
  strategyLookup,
  tableRuleId,
  type Located,
  type Model,
  type NormalizedMask,
} from './model.js';
import { parseClock, parseDuration } from './patterns.js';
import { compileListener, compileTarget } from './compile-topology.js';
import { resolveColumnMask, shadowedClassifications } from './policy-checks.js';
import type {
  ApprovalRuleSpec,
  ConfigDocument,
  Diagnostic,
  JwtAlgorithmName,
  MaskingStrategySpec,
  PhiClassName,
  PolicyActionName,
  PolicyTestCase,
  RoleSpec,
  StatementKindName,
  WeekdayName,
} from './types.js';
import { analyze } from './validate.js';

/** Reported in PolicyBundle.compiler_version; bump with any change to what the compiler emits. */
export const COMPILER_VERSION = 'warden-config-compiler/0.1.0';
export const SCHEMA_VERSION = 1;

/** Read-only agents still BEGIN and SET, so a role that names no kinds can read and manage its session, nothing more. */
export const DEFAULT_STATEMENT_KINDS: readonly StatementKindName[] = ['select', 'transaction', 'session'];

export interface CommitInfo {
  sha: string;
  author: { name: string; email: string };
  committer: { name: string; email: string };
  message: string;
  committedAt: Date;
}

export interface CompileOptions {
  /** Defaults to now; fixed in tests and for reproducible builds. */
  compiledAt?: Date;
}

export interface CompileResult {
  /** Undefined whenever any diagnostic is an error: a partial bundle is never produced. */
  bundle: PolicyBundle | undefined;
  tests: PolicyTestCase[];
  diagnostics: Diagnostic[];
}

const ACTION: Record<PolicyActionName, PolicyAction> = { allow: PolicyAction.ALLOW, mask: PolicyAction.MASK, deny: PolicyAction.DENY };
const PHI: Record<PhiClassName, PhiClass> = {
  none: PhiClass.NONE,
  'direct-identifier': PhiClass.DIRECT_IDENTIFIER,
  'quasi-identifier': PhiClass.QUASI_IDENTIFIER,
  clinical: PhiClass.CLINICAL,
  sensitive: PhiClass.SENSITIVE,
  financial: PhiClass.FINANCIAL,
  'free-text': PhiClass.FREE_TEXT,
};
const KIND: Record<StatementKindName, StatementKind> = {
  select: StatementKind.SELECT, insert: StatementKind.INSERT, update: StatementKind.UPDATE, delete: StatementKind.DELETE,
  merge: StatementKind.MERGE, ddl: StatementKind.DDL, truncate: StatementKind.TRUNCATE, 'copy-out': StatementKind.COPY_OUT,
  'copy-in': StatementKind.COPY_IN, dcl: StatementKind.DCL, transaction: StatementKind.TRANSACTION, session: StatementKind.SESSION,
  explain: StatementKind.EXPLAIN, call: StatementKind.CALL, maintenance: StatementKind.MAINTENANCE, other: StatementKind.OTHER,
};
const ALG: Record<JwtAlgorithmName, JwtAlgorithm> = { RS256: JwtAlgorithm.RS256, ES256: JwtAlgorithm.ES256, EdDSA: JwtAlgorithm.EDDSA };
const DAY: Record<WeekdayName, Weekday> = {
  mon: Weekday.MONDAY, tue: Weekday.TUESDAY, wed: Weekday.WEDNESDAY, thu: Weekday.THURSDAY,
  fri: Weekday.FRIDAY, sat: Weekday.SATURDAY, sun: Weekday.SUNDAY,
};
const PRECISION = { year: DatePrecision.YEAR, month: DatePrecision.MONTH, day: DatePrecision.DAY } as const;

function maskSpec(m: NormalizedMask): MaskSpec {
  return create(MaskSpecSchema, { strategy: m.strategy, params: m.params });
}

type StrategyKindInit = NonNullable<MessageInitShape<typeof MaskingStrategySchema>['kind']>;

function strategyKind(s: MaskingStrategySpec): StrategyKindInit {
  const g = s.generalize;
  if (s.redact) return { case: 'redact', value: { replacement: s.redact.replacement ?? '[REDACTED]' } };
  if (s.nullify) return { case: 'nullify', value: {} };
  if (s.partial) return { case: 'partial', value: { keepPrefix: s.partial.keepPrefix ?? 0, keepSuffix: s.partial.keepSuffix ?? 4, maskChar: s.partial.maskChar ?? '*' } };
  if (s.hash) {
    return { case: 'hash', value: { algorithm: HashAlgorithm.HMAC_SHA256, keyRef: s.hash.keyRef, outputChars: s.hash.outputChars ?? 0, prefix: s.hash.prefix ?? '' } };
  }
  if (s.emailDomain) return { case: 'emailDomain', value: { localReplacement: s.emailDomain.localReplacement ?? '***' } };
  if (s.detect) {
    return { case: 'detect', value: { detectors: [...s.detect.detectors], customPatterns: [...(s.detect.customPatterns ?? [])], replacement: s.detect.replacement ?? '' } };
  }
  if (g?.date) return { case: 'generalize', value: { method: { case: 'date', value: { precision: PRECISION[g.date.precision ?? 'year'] } } } };
  if (g?.number) {
    const { bucketSize, ceiling } = g.number;
    return { case: 'generalize', value: { method: { case: 'number', value: { bucketSize, ...(ceiling === undefined ? {} : { ceiling }) } } } };
  }
  if (g?.prefix) {
    const p = g.prefix;
    return { case: 'generalize', value: { method: { case: 'prefix', value: { keepChars: p.keepChars, fillChar: p.fillChar ?? '*', suppressedPrefixes: [...(p.suppressedPrefixes ?? [])] } } } };
  }
  throw new Error(`strategy ${s.name} has no kind; validation should have rejected it`);
}

export function compileStrategy(s: MaskingStrategySpec): MaskingStrategy {
  return create(MaskingStrategySchema, { name: s.name, description: s.description ?? '', kind: strategyKind(s) });
}

function compileRole(
  role: RoleSpec,
  resolve: (ti: number, ci: number) => ReturnType<typeof resolveColumnMask>,
  used: Set<string>,
): Role {
  const tables = role.tables.map((t, ti) =>
    create(TableRuleSchema, {
      id: tableRuleId(role, ti),
      table: t.table,
      defaultAction: t.defaultAction ? ACTION[t.defaultAction] : PolicyAction.UNSPECIFIED,
      columns: (t.columns ?? []).flatMap((c, ci): ColumnRule[] => {
        const id = columnRuleId(role, ti, ci);
        const selector = c.phiClass !== undefined
          ? { case: 'phiClass' as const, value: PHI[c.phiClass] }
          : { case: 'column' as const, value: c.column ?? '' };
        const res = resolve(ti, ci);
        if (res.kind === 'expand') {
          return res.rules.map((x) => {
            used.add(x.mask.strategy);
            return create(ColumnRuleSchema, { id: x.id, selector: { case: 'column', value: x.column }, action: PolicyAction.MASK, mask: maskSpec(x.mask) });
          });
        }
        if (res.kind === 'error') throw new Error(`unresolved mask in role ${role.name}; validation should have rejected it`);
        if (res.kind === 'single') used.add(res.mask.strategy);
        return [create(ColumnRuleSchema, { id, selector, action: ACTION[c.action], ...(res.kind === 'single' ? { mask: maskSpec(res.mask) } : {}) })];
      }),
    }),
  );
  return create(RoleSchema, {
    name: role.name,
    description: role.description ?? '',
    targets: [...role.targets],
    statementKinds: (role.statementKinds ?? DEFAULT_STATEMENT_KINDS).map((k) => KIND[k]),
    tables,
    defaultAction: ACTION[role.defaultAction ?? 'deny'],
    maxRows: role.maxRows ?? 0,
    rowLimitAction: role.rowLimitAction === 'error' ? RowLimitAction.ERROR : RowLimitAction.TRUNCATE,
    unknownOrigin: role.unknownOrigin === 'redact' ? UnknownOriginAction.REDACT : UnknownOriginAction.REFUSE,
    httpRoutes: (role.http?.routes ?? []).map((r, i) => ({
      id: httpRouteId(role, i),
      methods: [...(r.methods ?? [])],
      path: r.path,
      action: ACTION[r.action],
      masks: (r.masks ?? []).map((fm) => {
        const mask = normalizeMask(fm.mask);
        used.add(mask.strategy);
        return { path: fm.path, mask: maskSpec(mask) };
      }),
    })),
    httpDefaultAction: ACTION[role.http?.defaultAction ?? 'deny'],
    ...(role.ssh
      ? {
          ssh: {
            shell: role.ssh.shell ?? false,
            exec: role.ssh.exec ?? false,
            execCommands: [...(role.ssh.execCommands ?? [])],
            sftp: role.ssh.sftp ?? false,
            portForwards: [...(role.ssh.portForwards ?? [])],
          },
        }
      : {}),
  });
}

function compileApproval(s: ApprovalRuleSpec): ApprovalRule {
  const mt = s.match;
  const scope = s.scope ?? 'once';
  return create(ApprovalRuleSchema, {
    id: s.id,
    description: s.description ?? '',
    match: {
      roles: mt.roles ?? [],
      targets: mt.targets ?? [],
      statementKinds: (mt.statementKinds ?? []).map((k) => KIND[k]),
      tables: mt.tables ?? [],
      columns: mt.columns ?? [],
      phiClasses: (mt.phiClasses ?? []).map((c) => PHI[c]),
      writeWithoutWhere: mt.writeWithoutWhere ?? false,
      ddl: mt.ddl ?? false,
      rowLimitExceeded: mt.rowLimitExceeded ?? false,
      unmask: mt.unmask ?? false,
      httpRoutes: [...(mt.httpRoutes ?? [])],
      sshCommands: [...(mt.sshCommands ?? [])],
      sshShell: mt.sshShell ?? false,
      ...(mt.time
        ? {
            time: {
              outside: mt.time.outside ?? false,
              windows: mt.time.windows.map((w) => ({
                days: (w.days ?? []).map((d) => DAY[d]),
                startMinute: parseClock(w.start) ?? 0,
                endMinute: parseClock(w.end) ?? 0,
                timeZone: w.timeZone,
              })),
            },
          }
        : {}),
    },
    approverGroups: [...s.approverGroups],
    quorum: s.quorum ?? 1,
    timeout: durationFromMs(parseDuration(s.timeout ?? '5m') ?? 300_000),
    scope: scope === 'grant' ? ApprovalScope.GRANT : ApprovalScope.ONCE,
    ...(scope === 'grant' ? { grantDuration: durationFromMs(parseDuration(s.grantDuration ?? '1h') ?? 3_600_000) } : {}),
    allowSelfApproval: s.allowSelfApproval ?? false,
  });
}

function compileTests(m: Model): PolicyTestCase[] {
  return m.tests.map(({ spec: s, doc }) => ({
    name: s.name,
    file: doc.file,
    line: doc.line,
    identity: { subject: s.identity.subject, groups: [...s.identity.groups], ...(s.identity.role ? { role: s.identity.role } : {}) },
    target: s.target,
    sql: s.sql,
    ...(s.at !== undefined ? { at: s.at } : {}),
    expect: {
      decision: s.expect.decision,
      maskedColumns: [...(s.expect.maskedColumns ?? [])],
      ...(s.expect.deniedMatches !== undefined ? { deniedMatches: s.expect.deniedMatches } : {}),
      ...(s.expect.approvalRule !== undefined ? { approvalRule: s.expect.approvalRule } : {}),
    },
  }));
}

function commitProblem(commit: CommitInfo): Diagnostic | undefined {
  if (/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(commit.sha) && !Number.isNaN(commit.committedAt.getTime())) return undefined;
  return { severity: 'error', file: '', path: '', code: 'invalid-commit', message: `commit "${commit.sha}" is not a full lowercase git SHA (40 or 64 hex digits) with a valid date` };
}

/** Validates and compiles a repository's documents as of one commit. */
export function compileBundle(docs: ConfigDocument[], commit: CommitInfo, options: CompileOptions = {}): CompileResult {
  const { model: m, diagnostics } = analyze(docs);
  const bad = commitProblem(commit);
  if (bad) diagnostics.push(bad);
  const tests = compileTests(m);
  if (diagnostics.some((d) => d.severity === 'error')) return { bundle: undefined, tests, diagnostics };

  const classIds = classificationIds(m.classifications);
  const shadowed = shadowedClassifications(m.classifications);
  const used = new Set<string>();
  const roles = m.roles.map(({ spec: r }) => compileRole(r, (ti, ci) => resolveColumnMask(r, ti, ci, m.classifications, classIds, shadowed), used));
  const classifications = m.classifications.map(({ spec: c }, k) => {
    if (c.defaultMask) used.add(c.defaultMask.strategy);
    return create(ClassificationRuleSchema, {
      id: classIds[k]!,
      pattern: c.pattern,
      targets: [...(c.targets ?? [])],
      phiClass: PHI[c.phiClass],
      tags: [...(c.tags ?? [])],
      ...(c.defaultMask ? { defaultMask: maskSpec(normalizeMask(c.defaultMask)) } : {}),
    });
  });
  // Declared strategies are all emitted (an agent may be asked to use one by a later rule); built-ins only when referenced.
  const lookup = strategyLookup(m);
  const names = new Set([...m.strategies.map((s) => s.spec.name), ...[...used].filter((n) => Object.hasOwn(BUILTIN_STRATEGIES, n))]);
  const maskingStrategies = [...names].sort().map((n) => compileStrategy(lookup.get(n)!));
  const identity = m.identities[0]!.spec;

  const bundle = create(PolicyBundleSchema, {
    schemaVersion: SCHEMA_VERSION,
    version: commit.sha,
    author: { ...commit.author },
    committer: { ...commit.committer },
    message: commit.message,
    committedAt: timestampFromDate(commit.committedAt),
    compiledAt: timestampFromDate(options.compiledAt ?? new Date()),
    compilerVersion: COMPILER_VERSION,
    targets: m.targets.map(compileTarget),
    listeners: m.listeners.map(compileListener),
    identity: {
      issuers: identity.issuers.map((i) => ({
        issuer: i.issuer,
        audiences: i.audiences ?? (i.audience !== undefined ? [i.audience] : []),
        groupsClaim: i.groupsClaim ?? 'groups',
        algorithms: (i.algorithms ?? ['RS256', 'ES256', 'EdDSA']).map((a) => ALG[a]),
        clockSkewSeconds: i.clockSkewSeconds ?? 30,
        jwksUri: i.jwksUri ?? '',
      })),
      groupMappings: identity.groupMappings.map((g) => ({ group: g.group, role: g.role, issuer: g.issuer ?? '' })),
    },
    roles,
    classifications,
    maskingStrategies,
    approvalRules: m.approvals.map((a) => compileApproval(a.spec)),
  });
  return { bundle, tests, diagnostics };
}
