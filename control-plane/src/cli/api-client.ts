/**
 * How CLI commands reach the control plane's API: the URL from --api or
 * WARDEN_API_URL, the person's OIDC token from --token (env:/file:
 * reference) or WARDEN_TOKEN.
 */
import { resolveSecret } from '../../../agent/src/config/secrets.js';

export interface ApiTarget {
  url: string;
  token: string;
}

/** --api / WARDEN_API_URL and --token (env:/file: reference) / WARDEN_TOKEN. */
export function apiTarget(values: { api?: string; token?: string }): ApiTarget | string {
  const url = values.api ?? process.env.WARDEN_API_URL;
  const token = values.token ? resolveSecret(values.token, process.cwd()) : process.env.WARDEN_TOKEN;
  if (!url) return 'the control plane API is needed: --api URL (or WARDEN_API_URL)';
  if (!token) return 'a token is needed: --token env:NAME|file:PATH (or WARDEN_TOKEN); get one with `warden token`';
  return { url: url.replace(/\/$/, ''), token: token.trim() };
}

export async function call(t: ApiTarget, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${t.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${t.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** Prints the API's refusal and returns the exit code for it. */
export function failed(r: { status: number; json: Record<string, unknown> }, out: NodeJS.WritableStream): number {
  out.write(`warden: the control plane answered ${r.status}: ${String(r.json.message ?? r.json.error ?? 'no detail')}\n`);
  return 1;
}
