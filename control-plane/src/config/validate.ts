/**
 * Validation of a whole config repository: each document against its
 * schema, then the checks across documents (names, references, PHI
 * coverage, contradictions). Everything is reported at once, in file
 * order, so an author fixes a pull request in one pass.
 */
import { checkParam, isBuiltinStrategy, paramTypes, toSnake } from './builtins.js';
import { buildModel, classificationIds, columnRuleId, diag, httpRouteId, strategyLookup, tableRuleId, type Located, type Model } from './model.js';
import { jsonPathProblem } from '../../../agent/src/engines/http/json-path.js';
import { isLoopback, isTimeZone, parseDuration, re2Problem } from './patterns.js';
import { checkContradictions, checkPhiCoverage, resolveColumnMask, shadowedClassifications } from './policy-checks.js';
import { checkEnvelope, checkSchema } from './schema-check.js';
import type { ConfigDocument, Diagnostic, MaskingStrategySpec, MaskSpecSpec, PathSegment } from './types.js';

const DAY_MS = 86_400_000;

/** Schema and semantic diagnostics for a set of documents. */
export function validateDocuments(docs: ConfigDocument[]): Diagnostic[] {
  return analyze(docs).diagnostics;
}

/** Also returns the model so the compiler does not re-derive it; the model is only trustworthy when there are no errors. */
export function analyze(docs: ConfigDocument[]): { model: Model; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const valid: ConfigDocument[] = [];
  // Names of documents that failed their schema still count as defined, so one typo in a Target does not also
  // turn every reference to it into an error.
  const broken = new Set<string>();
  for (const doc of docs) {
    const problems = doc.problems ?? [];
    diagnostics.push(...problems);
    if (problems.some((p) => p.severity === 'error')) continue;
    const envelope = checkEnvelope(doc);
    const schema = envelope.length > 0 ? envelope : checkSchema(doc);
    diagnostics.push(...schema);
    if (schema.length === 0) valid.push(doc);
    else if (envelope.length === 0) {
      const spec = doc.spec as { name?: unknown; id?: unknown } | undefined;
      const name = typeof spec?.name === 'string' ? spec.name : typeof spec?.id === 'string' ? spec.id : undefined;
      if (name !== undefined) broken.add(`${doc.kind}/${name}`);
      if (doc.kind === 'Identity') broken.add('Identity');
    }
  }
  const model = buildModel(valid);
  diagnostics.push(...semanticChecks(model, broken));
  return { model, diagnostics };
}

type Where = { doc: ConfigDocument; path: PathSegment[] };

function semanticChecks(m: Model, broken: ReadonlySet<string>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const known = (kind: string, names: string[]) => ({ has: (n: string) => names.includes(n) || broken.has(`${kind}/${n}`) });
  const targets = known('Target', m.targets.map((t) => t.spec.name));
  const roles = known('Role', m.roles.map((r) => r.spec.name));
  const strategies = strategyLookup(m);

  const unique = <T>(items: Located<T>[], key: (s: T) => string, what: string, sub: PathSegment[] = ['name']): void => {
    const first = new Map<string, Located<T>>();
    for (const it of items) {
      const k = key(it.spec);
      const seen = first.get(k);
      if (seen) out.push(diag('error', it, sub, 'duplicate-name', `${what} "${k}" is already defined in ${seen.doc.file}:${seen.doc.line}`));
      else first.set(k, it);
    }
  };
  unique(m.targets, (s) => s.name, 'target');
  unique(m.listeners, (s) => s.name, 'listener');
  unique(m.roles, (s) => s.name, 'role');
  unique(m.strategies, (s) => s.name, 'masking strategy');
  unique(m.approvals, (s) => s.id, 'approval rule', ['id']);
  unique(m.tests, (s) => s.name, 'policy test');

  const ref = (where: Where, sub: PathSegment[], ok: boolean, code: string, message: string): void => {
    if (!ok) out.push(diag('error', where, sub, code, message));
  };
  const targetRefs = (where: Where, list: string[] | undefined, sub: PathSegment[], owner: string): void =>
    list?.forEach((t, i) => ref(where, [...sub, i], targets.has(t), 'unknown-target', `${owner} names target "${t}", which is not defined`));

  const maskRef = (where: Where, sub: PathSegment[], mask: MaskSpecSpec): void => {
    const s = strategies.get(mask.strategy);
    if (!s && broken.has(`MaskingStrategy/${mask.strategy}`)) return;
    if (!s) {
      out.push(diag('error', where, [...sub, 'strategy'], 'unknown-strategy',
        `masking strategy "${mask.strategy}" is neither declared nor built in (built-ins: redact, null, partial, email-domain, generalize-date, generalize-zip, generalize-age, detect)`));
      return;
    }
    const types = paramTypes(s);
    for (const [k, v] of Object.entries(mask.params ?? {})) {
      const type = types[toSnake(k)];
      if (!type) {
        const known = Object.keys(types);
        out.push(diag('error', where, [...sub, 'params', k], 'invalid-param',
          `strategy "${mask.strategy}" has no parameter "${k}"${known.length > 0 ? ` (parameters: ${known.join(', ')})` : ''}`));
        continue;
      }
      const checked = checkParam(type, v);
      if ('error' in checked) out.push(diag('error', where, [...sub, 'params', k], 'invalid-param', `parameter "${k}" ${checked.error}`));
    }
  };

  // ---------------------------------------------------------------- targets and listeners
  for (const t of m.targets) {
    const pg = t.spec.postgres;
    const http = t.spec.http;
    if (http && http.baseUrl.startsWith('http://') && !isLoopback(new URL(http.baseUrl).hostname)) {
      out.push(diag('warning', t, ['http', 'baseUrl'], 'plaintext-upstream', `target "${t.spec.name}": PHI crosses the network to ${http.baseUrl} unencrypted`));
    }
    t.spec.ssh?.hostKeys.forEach((k, i) => {
      if (!sshPublicKeyParses(k)) out.push(diag('error', t, ['ssh', 'hostKeys', i], 'invalid-value', `target "${t.spec.name}": host key ${i + 1} is not a valid SSH public key`));
    });
    if (!pg) continue;
    if (!pg.tls && !isLoopback(pg.host)) {
      out.push(diag('error', t, ['postgres'], 'target-tls-required',
        `target "${t.spec.name}": host ${pg.host} is not loopback, so postgres.tls.mode must be set (verify-full unless you know why not)`));
    } else if (pg.tls?.mode === 'disable' && !isLoopback(pg.host)) {
      out.push(diag('warning', t, ['postgres', 'tls', 'mode'], 'plaintext-upstream',
        `target "${t.spec.name}": PHI and the agent's upstream password cross the network to ${pg.host} unencrypted`));
    }
  }
  const targetKind = new Map(m.targets.map((t) => [t.spec.name, protocolOf(t.spec)]));
  const sockets = new Map<string, Located<unknown>>();
  for (const l of m.listeners) {
    const s = l.spec;
    ref(l, ['target'], targets.has(s.target), 'unknown-target', `listener "${s.name}" forwards to target "${s.target}", which is not defined`);
    const protocol = protocolOf(s);
    const kind = targetKind.get(s.target);
    if (kind && kind !== protocol) {
      out.push(diag('error', l, [protocol], 'listener-protocol-mismatch', `listener "${s.name}" speaks ${protocol}, but target "${s.target}" is ${A_KIND[kind]} target`));
    }
    const tlsBearing = s.postgres ?? s.http;
    if (tlsBearing && !tlsBearing.tls && !tlsBearing.allowPlaintext) {
      out.push(diag('error', l, [protocol], 'listener-tls-required',
        `listener "${s.name}" needs ${protocol}.tls (certFile/keyFile) or allowPlaintext: true; tokens are never accepted in cleartext otherwise`));
    } else if (tlsBearing?.allowPlaintext && !tlsBearing.tls && !isLoopback(s.address)) {
      out.push(diag('warning', l, [protocol, 'allowPlaintext'], 'plaintext-listener',
        `listener "${s.name}" accepts tokens in cleartext on ${s.address}; allowPlaintext is meant for loopback development`));
    }
    const key = `${s.address}:${s.port}:${JSON.stringify(Object.entries(s.agentSelector ?? {}).sort())}`;
    const seen = sockets.get(key);
    if (seen && s.port !== 0) out.push(diag('error', l, ['port'], 'duplicate-listener', `listener "${s.name}" binds ${s.address}:${s.port} on the same agents as ${seen.doc.file}:${seen.doc.line}`));
    else sockets.set(key, l);
  }

  // ---------------------------------------------------------------- identity
  if (m.identities.length === 0 && !broken.has('Identity')) {
    out.push({ severity: 'error', file: '', path: '', code: 'identity-count', message: 'the repository needs exactly one Identity document; none was found' });
  }
  const first = m.identities[0];
  for (const extra of m.identities.slice(1)) {
    out.push(diag('error', { doc: extra.doc, path: [] }, [], 'identity-count', `the repository needs exactly one Identity document; another is in ${first!.doc.file}:${first!.doc.line}`));
  }
  for (const id of m.identities) {
    const issuers = new Set<string>();
    id.spec.issuers.forEach((iss, i) => {
      if (issuers.has(iss.issuer)) out.push(diag('error', id, ['issuers', i, 'issuer'], 'duplicate-name', `issuer "${iss.issuer}" is listed twice`));
      issuers.add(iss.issuer);
      for (const field of ['issuer', 'jwksUri'] as const) {
        const url = iss[field];
        if (url?.startsWith('http://') && !isLoopback(hostOf(url))) {
          out.push(diag('error', id, ['issuers', i, field], 'insecure-issuer', `${url}: signing keys fetched over plain http can be swapped in transit; use https`));
        }
      }
    });
    id.spec.groupMappings.forEach((g, i) => {
      ref(id, ['groupMappings', i, 'role'], roles.has(g.role), 'unknown-role', `group "${g.group}" maps to role "${g.role}", which is not defined`);
      if (g.issuer !== undefined) ref(id, ['groupMappings', i, 'issuer'], issuers.has(g.issuer), 'unknown-issuer', `group mapping names issuer "${g.issuer}", which is not configured`);
    });
  }

  // ---------------------------------------------------------------- masking strategies
  for (const s of m.strategies) {
    if (isBuiltinStrategy(s.spec.name)) {
      out.push(diag('error', s, ['name'], 'duplicate-name', `"${s.spec.name}" is a built-in strategy; choose another name so its meaning cannot change per repository`));
    }
    checkStrategy(s, out);
  }

  // ---------------------------------------------------------------- classification
  const shadowed = shadowedClassifications(m.classifications);
  m.classifications.forEach((c, k) => {
    targetRefs(c, c.spec.targets, ['targets'], `classification rule "${c.spec.pattern}"`);
    if (c.spec.defaultMask) maskRef(c, ['defaultMask'], c.spec.defaultMask);
    const by = shadowed[k];
    if (by !== undefined) {
      const e = m.classifications[by]!;
      out.push(diag('warning', c, ['pattern'], 'shadowed-rule', `classification rule "${c.spec.pattern}" never applies: "${e.spec.pattern}" (${e.doc.file}:${e.doc.lineAt?.(e.path) ?? e.doc.line}) matches first`));
    }
  });

  // ---------------------------------------------------------------- roles
  const classIds = classificationIds(m.classifications);
  const ruleIds = new Map<string, string>();
  const claimId = (id: string, where: Where, sub: PathSegment[]): void => {
    const seen = ruleIds.get(id);
    if (seen) out.push(diag('error', where, sub, 'duplicate-id', `rule id "${id}" is already used by ${seen}`));
    else ruleIds.set(id, `${where.doc.file}:${where.doc.lineAt?.([...where.path, ...sub]) ?? where.doc.line}`);
  };
  m.classifications.forEach((c, k) => claimId(classIds[k]!, c, []));
  for (const role of m.roles) {
    const r = role.spec;
    targetRefs(role, r.targets, ['targets'], `role "${r.name}"`);
    r.tables.forEach((t, ti) => {
      claimId(tableRuleId(r, ti), role, ['tables', ti]);
      (t.columns ?? []).forEach((col, ci) => {
        const sub: PathSegment[] = ['tables', ti, 'columns', ci];
        claimId(columnRuleId(r, ti, ci), role, sub);
        if (col.mask && col.action !== 'mask') {
          out.push(diag('error', role, [...sub, 'mask'], 'invalid-value', `mask is only used with action: mask (this rule says ${col.action})`));
        }
        if (col.mask) maskRef(role, [...sub, 'mask'], col.mask);
        const res = resolveColumnMask(r, ti, ci, m.classifications, classIds, shadowed);
        if (res.kind === 'error') out.push(diag('error', role, sub, res.code, res.message));
        if (res.kind === 'expand') res.rules.forEach((x) => claimId(x.id, role, sub));
      });
    });
    r.http?.routes?.forEach((route, i) => {
      claimId(httpRouteId(r, i), role, ['http', 'routes', i]);
      if (route.path.replace(/\/\*\*$/, '').includes('**')) {
        out.push(diag('error', role, ['http', 'routes', i, 'path'], 'invalid-value', `path "${route.path}": "**" may only be the last segment ("/api/**"); "*" matches one segment`));
      }
      route.masks?.forEach((fm, k) => {
        const sub: PathSegment[] = ['http', 'routes', i, 'masks', k];
        if (route.action !== 'allow') out.push(diag('error', role, sub, 'invalid-value', `masks only apply to action: allow (this route says ${route.action})`));
        const problem = jsonPathProblem(fm.path);
        if (problem) out.push(diag('error', role, [...sub, 'path'], 'invalid-value', `JSON path ${JSON.stringify(fm.path)}: ${problem}`));
        maskRef(role, [...sub, 'mask'], fm.mask);
      });
    });
    r.ssh?.execCommands?.forEach((re, i) => {
      const problem = regexProblem(re);
      if (problem) out.push(diag('error', role, ['ssh', 'execCommands', i], 'invalid-value', `role "${r.name}": ${problem}`));
    });
    out.push(...checkContradictions(role));
    out.push(...checkPhiCoverage(role, m.classifications, shadowed));
  }

  // ---------------------------------------------------------------- approval rules
  for (const a of m.approvals) {
    const s = a.spec;
    claimId(s.id, a, ['id']);
    s.match.roles?.forEach((r, i) => ref(a, ['match', 'roles', i], roles.has(r), 'unknown-role', `approval rule "${s.id}" names role "${r}", which is not defined`));
    targetRefs(a, s.match.targets, ['match', 'targets'], `approval rule "${s.id}"`);
    s.match.time?.windows.forEach((w, i) => {
      if (!isTimeZone(w.timeZone)) out.push(diag('error', a, ['match', 'time', 'windows', i, 'timeZone'], 'invalid-value', `"${w.timeZone}" is not an IANA time zone`));
    });
    const timeout = parseDuration(s.timeout ?? '5m');
    if (timeout === undefined || timeout < 1000 || timeout > DAY_MS) {
      out.push(diag('error', a, ['timeout'], 'invalid-value', `timeout must be between 1s and 24h`));
    }
    if (s.grantDuration !== undefined) {
      const grant = parseDuration(s.grantDuration);
      if (grant === undefined || grant < 60_000 || grant > 30 * DAY_MS) out.push(diag('error', a, ['grantDuration'], 'invalid-value', 'grantDuration must be between 1m and 30d'));
      if ((s.scope ?? 'once') === 'once') out.push(diag('warning', a, ['grantDuration'], 'ignored-field', 'grantDuration only applies with scope: grant'));
    }
    const mt = s.match;
    const conditions = [mt.roles, mt.targets, mt.statementKinds, mt.tables, mt.columns, mt.phiClasses, mt.httpRoutes, mt.sshCommands].some((l) => l && l.length > 0) ||
      mt.writeWithoutWhere || mt.ddl || mt.rowLimitExceeded || mt.sshShell || mt.time !== undefined;
    for (const field of ['httpRoutes', 'sshCommands'] as const) {
      mt[field]?.forEach((re, i) => {
        const problem = regexProblem(re);
        if (problem) out.push(diag('error', a, ['match', field, i], 'invalid-value', `approval rule "${s.id}": ${problem}`));
      });
    }
    if (mt.unmask && !(mt.columns?.length || mt.phiClasses?.length)) {
      out.push(diag('error', a, ['match', 'unmask'], 'invalid-value', `approval rule "${s.id}" unmasks with approval but names no columns or phiClasses to unmask`));
    }
    if (!conditions) out.push(diag('warning', a, ['match'], 'matches-everything', `approval rule "${s.id}" has no conditions and holds every statement`));
  }

  // ---------------------------------------------------------------- policy tests
  const approvalIds = known('ApprovalRule', m.approvals.map((a) => a.spec.id));
  for (const t of m.tests) {
    const s = t.spec;
    ref(t, ['target'], targets.has(s.target), 'unknown-target', `policy test "${s.name}" uses target "${s.target}", which is not defined`);
    if (s.identity.role !== undefined) ref(t, ['identity', 'role'], roles.has(s.identity.role), 'unknown-role', `policy test "${s.name}" uses role "${s.identity.role}", which is not defined`);
    if (s.expect.approvalRule !== undefined) {
      ref(t, ['expect', 'approvalRule'], approvalIds.has(s.expect.approvalRule), 'unknown-approval-rule', `policy test "${s.name}" expects approval rule "${s.expect.approvalRule}", which is not defined`);
    }
    if (s.expect.deniedMatches !== undefined) {
      try {
        new RegExp(s.expect.deniedMatches);
      } catch (err) {
        out.push(diag('error', t, ['expect', 'deniedMatches'], 'invalid-value', `not a regular expression: ${(err as Error).message}`));
      }
    }
  }
  return out;
}

const A_KIND = { postgres: 'a PostgreSQL', http: 'an HTTP', ssh: 'an SSH' } as const;

/** The protocol a Target or Listener speaks: the one of its postgres / http / ssh sections that is set. */
export function protocolOf(spec: { postgres?: unknown; http?: unknown; ssh?: unknown }): 'postgres' | 'http' | 'ssh' {
  return spec.http ? 'http' : spec.ssh ? 'ssh' : 'postgres';
}

function regexProblem(source: string): string | undefined {
  const problem = re2Problem(source);
  return problem ? `pattern ${JSON.stringify(source)}: ${problem}` : undefined;
}

/** An OpenSSH public key line: the type named before the blob must be the type encoded inside it. */
function sshPublicKeyParses(line: string): boolean {
  const [type, blob] = line.split(' ');
  const raw = Buffer.from(blob ?? '', 'base64');
  if (raw.length < 4) return false;
  const len = raw.readUInt32BE(0);
  return raw.length >= 4 + len && raw.subarray(4, 4 + len).toString('latin1') === type;
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return '';
  }
}

function checkStrategy(s: Located<MaskingStrategySpec>, out: Diagnostic[]): void {
  const spec = s.spec;
  spec.detect?.customPatterns?.forEach((p, i) => {
    const problem = re2Problem(p);
    if (problem) out.push(diag('error', s, ['detect', 'customPatterns', i], 'invalid-value', `pattern ${JSON.stringify(p)}: ${problem}`));
  });
  const prefix = spec.generalize?.prefix;
  prefix?.suppressedPrefixes?.forEach((p, i) => {
    if (p.length !== prefix.keepChars) {
      out.push(diag('error', s, ['generalize', 'prefix', 'suppressedPrefixes', i], 'invalid-value', `"${p}" must have keepChars (${prefix.keepChars}) characters to ever match`));
    }
  });
  const num = spec.generalize?.number;
  if (num?.ceiling !== undefined && num.ceiling < num.bucketSize) {
    out.push(diag('error', s, ['generalize', 'number', 'ceiling'], 'invalid-value', 'ceiling must be at least bucketSize'));
  }
}
