/**
 * Inspect and decide for HTTP: a request's method and path are checked
 * against the role's route rules (first match wins, else the role's HTTP
 * default), giving allow or deny and, for allowed routes, the JSON fields
 * of the response to mask.
 *
 * Paths are judged exactly as they are forwarded. A path the upstream might
 * read differently from the agent (dot segments, empty segments, encoded
 * slashes, dots or backslashes) is refused rather than normalised, so a
 * deny rule cannot be walked around with `/api/./admin` or `%2e%2e`.
 */
import { PolicyAction, type PolicyBundle, type Role } from '../../../../proto/src/index.js';
import { MaskerFactory, type SecretResolver } from '../../policy/maskers.js';
import type { Masker } from '../../masking/index.js';
import { parseJsonPath, type JsonPathStep } from './json-path.js';

export interface FieldMask {
  /** As written in the rule, e.g. "$.patients[*].ssn". */
  path: string;
  steps: JsonPathStep[];
  masker: Masker;
  /** Strategy with its parameters, for the record. */
  strategy: string;
}

export interface RouteDecision {
  action: 'allow' | 'deny';
  /** The route rule that decided; "default" when none matched. */
  ruleId: string;
  masks: FieldMask[];
}

export class RequestPathError extends Error {}

/** Splits a request target into path and query, refusing paths that could be read two ways. */
export function checkRequestTarget(target: string): { path: string; query: string } {
  if (!target.startsWith('/')) throw new RequestPathError('the request target must be an absolute path');
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q + 1);
  if (/%2f|%5c|%2e|%00/i.test(path) || path.includes('\\')) throw new RequestPathError('encoded slashes, dots, backslashes or NULs are not accepted in the path');
  const segments = path.split('/').slice(1);
  if (segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1))) {
    throw new RequestPathError('dot segments and empty segments are not accepted in the path');
  }
  return { path, query };
}

/** "METHOD /path?a=?&b=?": what records and approvers see (query values may carry PHI). */
export function describeRequest(method: string, path: string, query: string): string {
  if (!query) return `${method} ${path}`;
  const keys = query.split('&').filter(Boolean).map((kv) => `${kv.split('=')[0]}=?`);
  return `${method} ${path}?${keys.join('&')}`;
}

/** Compiles a path pattern: "*" one segment, a trailing "**" any rest (including nothing). */
export function compilePathPattern(pattern: string): (path: string) => boolean {
  const parts = pattern.split('/').slice(1);
  const rest = parts[parts.length - 1] === '**';
  const fixed = rest ? parts.slice(0, -1) : parts;
  const escape = (s: string): string => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*');
  const re = new RegExp(`^${fixed.map((p) => '/' + escape(p)).join('')}${rest ? '(/.*)?' : ''}$`);
  return (path) => re.test(path);
}

interface CompiledRoute {
  id: string;
  methods: Set<string>;
  match: (path: string) => boolean;
  action: 'allow' | 'deny';
  masks: FieldMask[];
}

export class HttpRolePolicy {
  private readonly routes: CompiledRoute[];
  private readonly fallback: 'allow' | 'deny';

  constructor(role: Role, maskers: MaskerFactory) {
    this.fallback = role.httpDefaultAction === PolicyAction.ALLOW ? 'allow' : 'deny';
    this.routes = role.httpRoutes.map((r) => ({
      id: r.id,
      methods: new Set(r.methods),
      match: compilePathPattern(r.path),
      action: r.action === PolicyAction.ALLOW ? 'allow' : 'deny',
      masks: r.masks.map((m) => {
        if (!m.mask) throw new Error(`route ${r.id}: mask rule ${m.path} names no strategy`);
        const { masker, description } = maskers.get(m.mask);
        return { path: m.path, steps: parseJsonPath(m.path), masker, strategy: description };
      }),
    }));
  }

  decide(method: string, path: string): RouteDecision {
    for (const r of this.routes) {
      if (r.methods.size > 0 && !r.methods.has(method)) continue;
      if (!r.match(path)) continue;
      return { action: r.action, ruleId: r.id, masks: r.action === 'allow' ? r.masks : [] };
    }
    return { action: this.fallback, ruleId: 'default', masks: [] };
  }
}

/** Every role's HTTP policy under one bundle; maskers (and their keys) are resolved when the bundle loads. */
export class HttpPolicy {
  private readonly roles = new Map<string, HttpRolePolicy>();

  constructor(bundle: PolicyBundle, baseDir: string, secrets?: SecretResolver) {
    const maskers = new MaskerFactory(bundle.maskingStrategies, baseDir, secrets);
    for (const role of bundle.roles) this.roles.set(role.name, new HttpRolePolicy(role, maskers));
  }

  forRole(name: string): HttpRolePolicy | undefined {
    return this.roles.get(name);
  }
}
