/**
 * Forward for HTTP: the request goes upstream with undici, carrying the
 * agent's own credentials (if the target names any) and never the client's
 * token; the upstream learns who is asking from X-Warden-* headers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import type { Target } from '../../../../proto/src/index.js';
import { resolveSecret } from '../../config/secrets.js';

export interface HttpUpstream {
  name: string;
  baseUrl: URL;
  /** Authorization header value for upstream requests (resolved secret). */
  authorization?: string;
  dispatcher: Dispatcher;
  maxMaskBodyBytes: number;
  timeoutMs: number;
}

export function resolveHttpTarget(t: Target, baseDir: string): HttpUpstream {
  if (t.kind.case !== 'http') throw new Error(`target ${t.name} is not an HTTP target`);
  const h = t.kind.value;
  const timeoutMs = h.timeoutMs || 30_000;
  return {
    name: t.name,
    baseUrl: new URL(h.baseUrl),
    ...(h.authorizationRef ? { authorization: resolveSecret(h.authorizationRef, baseDir) } : {}),
    dispatcher: new Agent({
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      ...(h.caFile ? { connect: { ca: fs.readFileSync(path.resolve(baseDir, h.caFile), 'utf8') } } : {}),
    }),
    maxMaskBodyBytes: h.maxMaskBodyBytes || 10 * 1024 * 1024,
    timeoutMs,
  };
}

/** Headers that describe one hop, or carry the client's credentials: never forwarded. */
const NOT_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding',
  'upgrade', 'host', 'authorization', 'content-length', 'expect',
]);

export function forwardableHeaders(headers: Record<string, string | string[] | undefined>, extraHop: string[] = []): Record<string, string | string[]> {
  const hop = new Set([...NOT_FORWARDED, ...extraHop]);
  for (const name of String(headers['connection'] ?? '').split(',')) if (name.trim()) hop.add(name.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || hop.has(k.toLowerCase()) || k.toLowerCase().startsWith('x-warden-')) continue;
    out[k] = v;
  }
  return out;
}

export interface ForwardRequest {
  method: string;
  /** Path and query as the client sent them (already checked). */
  target: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  clientAddress: string;
  tls: boolean;
  subject: string;
  role: string;
  /** The response will be masked: ask for an unencoded body. */
  identityEncoding: boolean;
}

export async function forward(up: HttpUpstream, req: ForwardRequest): Promise<Dispatcher.ResponseData> {
  const base = up.baseUrl.pathname.replace(/\/$/, '');
  const url = new URL(up.baseUrl.origin + base + req.target);
  const headers = forwardableHeaders(req.headers);
  headers['x-forwarded-for'] = req.clientAddress.replace(/:\d+$/, '');
  headers['x-forwarded-proto'] = req.tls ? 'https' : 'http';
  headers['x-warden-subject'] = req.subject;
  headers['x-warden-role'] = req.role;
  if (req.identityEncoding) headers['accept-encoding'] = 'identity';
  if (up.authorization) headers['authorization'] = up.authorization;
  return request(url, {
    method: req.method as Dispatcher.HttpMethod,
    headers,
    body: req.body.length > 0 || !['GET', 'HEAD'].includes(req.method) ? req.body : null,
    dispatcher: up.dispatcher,
  });
}
