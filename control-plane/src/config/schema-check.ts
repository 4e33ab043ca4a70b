/**
 * Runs a document through its kind's JSON Schema and turns ajv's errors into
 * diagnostics a policy author can act on: the path in the file, the line,
 * and a code that says what kind of mistake it is.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { schemas, SECRET_REF_PATTERN } from './schemas.js';
import { API_VERSION, KINDS, type ConfigDocument, type Diagnostic, type Kind, type PathSegment } from './types.js';

const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, verbose: true });
const validators = new Map<string, ValidateFunction>(KINDS.map((k) => [k, ajv.compile(schemas[k])]));

/** Field names that would hold a secret in clear; they only exist as *Ref. */
const LITERAL_SECRET = /^(password|passwd|secret|key|token|apiKey|privateKey|clientSecret|secretKey)$/i;

export function formatPath(segments: readonly PathSegment[]): string {
  return segments.reduce<string>((acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : acc === '' ? s : `${acc}.${s}`), '');
}

function segmentsOf(instancePath: string): PathSegment[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

function suggestion(field: string, parent: unknown): string {
  const props = Object.keys((parent as { properties?: object } | undefined)?.properties ?? {});
  const near = (p: string): number => {
    // A truncated or extended name ("hostname" for "host") is as likely a slip as a typo.
    const a = p.toLowerCase();
    const b = field.toLowerCase();
    return a.length >= 3 && b.length >= 3 && (a.startsWith(b) || b.startsWith(a)) ? 1 : distance(field, p);
  };
  const best = props.map((p) => ({ p, d: near(p) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(1, Math.floor(field.length / 3)) ? `; did you mean "${best.p}"?` : '';
}

interface Mapped {
  segments: PathSegment[];
  code: string;
  message: string;
}

function mapError(e: ErrorObject): Mapped {
  const segments = segmentsOf(e.instancePath);
  const last = segments[segments.length - 1];
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = String(params.additionalProperty);
      if (LITERAL_SECRET.test(field)) {
        const ref = field.toLowerCase() === 'key' ? 'keyRef' : `${field}Ref`;
        return {
          segments: [...segments, field], code: 'literal-secret',
          message: `"${field}" would put a secret in the repository; give a reference instead (${ref}: env:NAME or file:/path)`,
        };
      }
      return { segments: [...segments, field], code: 'unknown-field', message: `unknown field "${field}"${suggestion(field, e.parentSchema)}` };
    }
    case 'required': {
      const field = String(params.missingProperty);
      if (field === 'keyRef' && last === 'hash') {
        return { segments, code: 'hash-key-required', message: 'a hash strategy needs keyRef (env:NAME or file:/path): an unkeyed hash of an identifier such as an SSN can be reversed by guessing' };
      }
      return { segments, code: 'missing-field', message: `missing required field "${field}"` };
    }
    case 'pattern':
      if (params.pattern === SECRET_REF_PATTERN) {
        return { segments, code: 'secret-ref', message: 'secrets are given by reference only: "env:NAME" or "file:/path", never the value itself' };
      }
      {
        const expected = (e.parentSchema as { description?: string } | undefined)?.description;
        return { segments, code: 'invalid-value', message: `${JSON.stringify(e.data)} is not ${expected ?? `matching ${String(params.pattern)}`}` };
      }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).join(', ');
      const bad = String(e.data);
      if (/^(HS\d+|none)$/i.test(bad)) {
        return { segments, code: 'invalid-value', message: `"${bad}" is never accepted: only the asymmetric algorithms ${allowed} are` };
      }
      return { segments, code: 'invalid-value', message: `"${bad}" is not one of ${allowed}` };
    }
    case 'oneOf': {
      const keys = (e.schema as Array<{ required?: string[] }>).flatMap((b) => b.required ?? []);
      return { segments, code: 'invalid-value', message: `set exactly one of ${keys.join(', ')}` };
    }
    case 'const':
      return { segments, code: 'invalid-value', message: `must be ${JSON.stringify(params.allowedValue)}` };
    default:
      return { segments, code: 'invalid-value', message: e.message ?? 'invalid value' };
  }
}

/** Schema diagnostics for one document whose apiVersion and kind are known. */
export function checkSchema(doc: ConfigDocument): Diagnostic[] {
  const validate = validators.get(doc.kind);
  if (!validate) return [];
  if (validate({ apiVersion: doc.apiVersion, kind: doc.kind, spec: doc.spec })) return [];
  const errors = validate.errors ?? [];
  // A failed oneOf also reports why each branch failed; only the oneOf itself helps the author.
  const oneOfPaths = errors.filter((e) => e.keyword === 'oneOf').map((e) => `${e.schemaPath}/`);
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const e of errors) {
    if (oneOfPaths.some((p) => e.schemaPath.startsWith(p))) continue;
    const m = mapError(e);
    const path = formatPath(m.segments);
    const key = `${path}\0${m.code}\0${m.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ severity: 'error', file: doc.file, line: doc.lineAt?.(m.segments) ?? doc.line, path, code: m.code, message: m.message });
  }
  return out;
}

/** Envelope checks: is this a document we know how to read at all. */
export function checkEnvelope(doc: ConfigDocument): Diagnostic[] {
  const at = (key: string): number => doc.lineAt?.([key]) ?? doc.line;
  if (doc.apiVersion !== API_VERSION) {
    return [{
      severity: 'error', file: doc.file, line: at('apiVersion'), path: 'apiVersion', code: 'unknown-api-version',
      message: `apiVersion "${doc.apiVersion}" is not supported; use ${API_VERSION}`,
    }];
  }
  if (!(KINDS as readonly string[]).includes(doc.kind)) {
    const near = KINDS.find((k) => distance(k, doc.kind) <= 2);
    return [{
      severity: 'error', file: doc.file, line: at('kind'), path: 'kind', code: 'unknown-kind',
      message: `unknown kind "${doc.kind}"${near ? `; did you mean "${near}"?` : ''} (known: ${KINDS.join(', ')})`,
    }];
  }
  return [];
}

export function isKind(kind: string): kind is Kind {
  return (KINDS as readonly string[]).includes(kind);
}
