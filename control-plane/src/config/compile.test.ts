import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ApprovalScope,
  DatePrecision,
  HashAlgorithm,
  JwtAlgorithm,
  PhiClass,
  PolicyAction,
  PolicyBundleSchema,
  PostgresTlsMode,
  RowLimitAction,
  StatementKind,
  Weekday,
  type PolicyBundle,
} from '../../../proto/src/index.js';
import { HOSPITAL_REPO } from './example-repo.js';
import { COMPILER_VERSION, compileBundle, loadConfigDir, loadConfigFiles, RESTRICTED_ZIP3, type CompileResult } from './index.js';

const COMMIT = {
  sha: '3f786850e387550fdab836ed7e6dc881de23001b',
  author: { name: 'Dana Privacy', email: 'dana@hospital.example' },
  committer: { name: 'GitHub', email: 'noreply@github.com' },
  message: 'Mask phone numbers for analytics',
  committedAt: new Date('2024-05-01T12:00:00Z'),
};
const COMPILED_AT = new Date('2024-05-01T12:05:00Z');

let dir: string;
let result: CompileResult;
let bundle: PolicyBundle;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-config-'));
  for (const [file, text] of Object.entries(HOSPITAL_REPO)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), text);
  }
  // Hidden folders (e.g. .github) are not config even when they hold YAML.
  await mkdir(path.join(dir, '.github/workflows'), { recursive: true });
  await writeFile(path.join(dir, '.github/workflows/ci.yaml'), 'on: push\njobs: {}\n');
  result = compileBundle(await loadConfigDir(dir), COMMIT, { compiledAt: COMPILED_AT });
  expect(result.diagnostics).toEqual([]);
  bundle = result.bundle!;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const role = (name: string) => bundle.roles.find((r) => r.name === name)!;

describe('compileBundle on the hospital repository', () => {
  it('stamps the commit and format version', () => {
    expect(bundle.schemaVersion).toBe(1);
    expect(bundle.version).toBe(COMMIT.sha);
    expect(bundle.author).toMatchObject(COMMIT.author);
    expect(bundle.committer).toMatchObject(COMMIT.committer);
    expect(bundle.message).toBe(COMMIT.message);
    expect(Number(bundle.committedAt!.seconds)).toBe(COMMIT.committedAt.getTime() / 1000);
    expect(Number(bundle.compiledAt!.seconds)).toBe(COMPILED_AT.getTime() / 1000);
    expect(bundle.compilerVersion).toBe(COMPILER_VERSION);
  });

  it('fills target and listener defaults', () => {
    const [clinical, dev] = bundle.targets;
    expect(clinical?.kind.case).toBe('postgres');
    const pg = clinical!.kind.case === 'postgres' ? clinical!.kind.value : undefined;
    const devPg = dev!.kind.case === 'postgres' ? dev!.kind.value : undefined;
    expect(pg).toMatchObject({ host: 'db.clinical.internal', port: 5432, passwordRef: 'env:WARDEN_CLINICAL_PASSWORD', connectTimeoutMs: 10000 });
    expect(pg?.tls).toMatchObject({ mode: PostgresTlsMode.VERIFY_FULL, caFile: '/etc/warden/db-ca.crt', serverName: '' });
    // Loopback without tls is the one place plaintext is the default.
    expect(devPg?.tls?.mode).toBe(PostgresTlsMode.DISABLE);
    expect(devPg?.passwordRef).toBe('');

    const [pgListener, devListener] = bundle.listeners;
    expect(pgListener).toMatchObject({ name: 'clinical-pg', target: 'clinical', port: 6432, agentSelector: { site: 'east' } });
    expect(pgListener!.protocol.value).toMatchObject({ allowPlaintext: false, maxMessageBytes: 67108864, tls: { certFile: '/etc/warden/tls.crt' } });
    expect(devListener!.protocol.value).toMatchObject({ allowPlaintext: true, maxMessageBytes: 1048576 });
    expect(devListener!.protocol.case === 'postgres' ? devListener!.protocol.value.tls : 'not postgres').toBeUndefined();
  });

  it('fills identity defaults and never emits symmetric algorithms', () => {
    const [idp, partner] = bundle.identity!.issuers;
    expect(idp).toMatchObject({ audiences: ['warden'], groupsClaim: 'groups', clockSkewSeconds: 30, jwksUri: '' });
    expect(idp!.algorithms).toEqual([JwtAlgorithm.RS256, JwtAlgorithm.ES256]);
    expect(partner).toMatchObject({ audiences: ['warden-api', 'warden'], groupsClaim: 'realm_access.roles', clockSkewSeconds: 60 });
    expect(partner!.algorithms).toEqual([JwtAlgorithm.RS256, JwtAlgorithm.ES256, JwtAlgorithm.EDDSA]);
    expect(bundle.identity!.groupMappings.map((g) => [g.group, g.role, g.issuer])).toEqual([
      ['ai-clinical-analytics', 'clinical-analytics', ''],
      ['billing-team', 'billing', ''],
      ['care-coordinators', 'care-coordination', 'https://idp.example.org/realms/hospital'],
      ['dba-oncall', 'oncall-dba', ''],
    ]);
  });

  it('fills role defaults', () => {
    const analytics = role('clinical-analytics');
    expect(analytics.statementKinds).toEqual([StatementKind.SELECT, StatementKind.TRANSACTION, StatementKind.SESSION]);
    expect(analytics.defaultAction).toBe(PolicyAction.DENY);
    expect(analytics.rowLimitAction).toBe(RowLimitAction.TRUNCATE);
    expect(analytics.maxRows).toBe(10000);
    const billing = role('billing');
    expect(billing.rowLimitAction).toBe(RowLimitAction.ERROR);
    expect(billing.statementKinds).toContain(StatementKind.UPDATE);
    expect(role('care-coordination').maxRows).toBe(0);
    // A table rule without a default inherits (UNSPECIFIED), as the proto says.
    expect(billing.tables[1]!.defaultAction).toBe(PolicyAction.UNSPECIFIED);
  });

  it('assigns stable rule ids and keeps the ones authors chose', () => {
    const billing = role('billing');
    expect(billing.tables.map((t) => t.id)).toEqual(['role/billing/table/0', 'billing-patients']);
    expect(billing.tables[0]!.columns.map((c) => c.id)).toEqual(['role/billing/table/0/column/0', 'role/billing/table/0/column/1']);
    expect(billing.tables[1]!.columns.map((c) => c.id)).toEqual(['role/billing/table/1/column/0', 'billing-last-name']);
    expect(bundle.classifications[0]!.id).toBe('classification/clinic.patients.mrn');
    expect(bundle.classifications.find((c) => c.pattern === 'clinic.clinical_notes.body')!.id).toBe('notes-body');
  });

  it('fills MASK rules from the classification default mask', () => {
    const patients = role('clinical-analytics').tables[0]!;
    const dob = patients.columns.find((c) => c.selector.case === 'column' && c.selector.value === 'dob')!;
    expect(dob.action).toBe(PolicyAction.MASK);
    expect(dob.mask).toMatchObject({ strategy: 'generalize-date', params: {} });
    const memberId = role('billing').tables[0]!.columns[0]!;
    expect(memberId.mask).toMatchObject({ strategy: 'hash-mrn', params: { prefix: 'mem_' } });
    // Parameters are written with proto field names.
    expect(role('billing').tables[1]!.columns[1]!.mask!.params).toEqual({ keep_suffix: '2', mask_char: 'x' });
  });

  it('splits a class rule whose columns have different default masks into one rule per classification', () => {
    const cols = role('clinical-analytics').tables[0]!.columns;
    const expanded = cols.filter((c) => c.id.startsWith('role/clinical-analytics/table/0/column/0/'));
    expect(expanded.map((c) => [c.selector.value, c.mask!.strategy])).toEqual([
      ['mrn', 'hash-mrn'],
      ['first_name', 'redact'],
      ['last_name', 'redact'],
      ['ssn', 'partial'],
      ['phone', 'partial'],
      ['email', 'email-domain'],
      ['address_line', 'redact'],
    ]);
    expect(expanded[0]!.id).toBe('role/clinical-analytics/table/0/column/0/classification/clinic.patients.mrn');
    expect(expanded.every((c) => c.action === PolicyAction.MASK)).toBe(true);
    // An explicit allow by class stays a class rule.
    const care = role('care-coordination').tables[0]!.columns[3]!;
    expect(care.selector).toEqual({ case: 'phiClass', value: PhiClass.DIRECT_IDENTIFIER });
    expect(care.mask).toBeUndefined();
  });

  it('keeps classification rules in file order with their classes and tags', () => {
    expect(bundle.classifications.map((c) => c.pattern).slice(-2)).toEqual(['clinic.*.id', 'clinic.*.created_at']);
    const ssn = bundle.classifications.find((c) => c.pattern === 'clinic.patients.ssn')!;
    expect(ssn).toMatchObject({ phiClass: PhiClass.DIRECT_IDENTIFIER, tags: ['hipaa:ssn'], targets: [] });
    expect(bundle.classifications.at(-1)!.phiClass).toBe(PhiClass.NONE);
  });

  it('emits every referenced strategy, built-ins included, and nothing unreferenced', () => {
    const names = bundle.maskingStrategies.map((s) => s.name);
    expect(names).toEqual(['detect', 'email-domain', 'generalize-date', 'generalize-zip', 'hash-mrn', 'notes-detect', 'partial', 'redact', 'ssn-last4']);
    const byName = (n: string) => bundle.maskingStrategies.find((s) => s.name === n)!.kind;
    expect(byName('redact')).toEqual(expect.objectContaining({ case: 'redact', value: expect.objectContaining({ replacement: '[REDACTED]' }) }));
    expect(byName('partial').value).toMatchObject({ keepPrefix: 0, keepSuffix: 4, maskChar: '*' });
    const zip = byName('generalize-zip');
    expect(zip.case).toBe('generalize');
    expect(zip.value).toMatchObject({ method: { case: 'prefix', value: { keepChars: 3, fillChar: '*' } } });
    expect((zip.value as { method: { value: { suppressedPrefixes: string[] } } }).method.value.suppressedPrefixes).toEqual([...RESTRICTED_ZIP3]);
    expect(RESTRICTED_ZIP3).toHaveLength(17);
    expect(byName('generalize-date').value).toMatchObject({ method: { case: 'date', value: { precision: DatePrecision.YEAR } } });
    expect(byName('detect').value).toMatchObject({ detectors: ['ssn', 'phone', 'email', 'mrn', 'date'], replacement: '' });
    expect(byName('hash-mrn').value).toMatchObject({ algorithm: HashAlgorithm.HMAC_SHA256, keyRef: 'env:WARDEN_HASH_KEY', outputChars: 24, prefix: 'mrn_' });
    expect(byName('notes-detect').value).toMatchObject({ detectors: ['ssn', 'phone', 'email', 'mrn'], replacement: '[PHI]' });
  });

  it('compiles approval rules with durations, windows and defaults', () => {
    const [bulk, ddl, write] = bundle.approvalRules;
    expect(bulk).toMatchObject({ id: 'bulk-export', quorum: 1, scope: ApprovalScope.ONCE, allowSelfApproval: false });
    expect(Number(bulk!.timeout!.seconds)).toBe(600);
    expect(bulk!.grantDuration).toBeUndefined();
    expect(bulk!.match).toMatchObject({ roles: ['clinical-analytics'], rowLimitExceeded: true, ddl: false });
    expect(ddl).toMatchObject({ quorum: 2, scope: ApprovalScope.GRANT, approverGroups: ['dba-leads', 'platform-leads'] });
    expect(Number(ddl!.timeout!.seconds)).toBe(300);
    expect(Number(ddl!.grantDuration!.seconds)).toBe(3600);
    expect(ddl!.match!.time).toMatchObject({ outside: true });
    expect(ddl!.match!.time!.windows[0]).toMatchObject({ startMinute: 480, endMinute: 1080, timeZone: 'America/New_York' });
    expect(ddl!.match!.time!.windows[0]!.days).toEqual([Weekday.MONDAY, Weekday.TUESDAY, Weekday.WEDNESDAY, Weekday.THURSDAY, Weekday.FRIDAY]);
    expect(write!.match).toMatchObject({ statementKinds: [StatementKind.UPDATE], phiClasses: [PhiClass.FINANCIAL], writeWithoutWhere: true });
  });

  it('returns policy tests separately, with defaults', () => {
    expect(result.tests.length).toBeGreaterThanOrEqual(8);
    expect(result.tests[0]).toEqual({
      name: 'analytics sees hashed MRNs',
      file: 'tests/analytics.yaml',
      line: 1,
      identity: { subject: 'bot-1', groups: ['ai-clinical-analytics'] },
      target: 'clinical',
      sql: 'SELECT mrn, dob FROM clinic.patients',
      expect: { decision: 'mask', maskedColumns: ['mrn', 'dob'] },
    });
    expect(result.tests[1]!.expect).toEqual({ decision: 'deny', maskedColumns: [], deniedMatches: 'clinic\\.billing' });
  });

  it('is deterministic and identical whether read from disk or from a commit', () => {
    const again = compileBundle(loadConfigFiles({ ...HOSPITAL_REPO }), COMMIT, { compiledAt: COMPILED_AT });
    expect(toBinary(PolicyBundleSchema, again.bundle!)).toEqual(toBinary(PolicyBundleSchema, bundle));
  });

  it('survives a serialisation round trip', () => {
    const bytes = toBinary(PolicyBundleSchema, bundle);
    expect(fromBinary(PolicyBundleSchema, bytes)).toEqual(bundle);
  });
});
