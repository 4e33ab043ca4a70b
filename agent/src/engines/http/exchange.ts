/**
 * One HTTP request through the agent, top to bottom:
 * authenticate (bearer token → role) → inspect (method + path) → decide
 * (route rules) → hold (approval rules) → forward → mask → record.
 *
 * Each request is its own session in the audit trail (session.start, one
 * statement, session.end): HTTP carries the token per request, so identity
 * is established per request, never per connection.
 */
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { once } from 'node:events';
import type { Logger } from 'pino';
import { AuthError, type AuthContext } from '../../identity/index.js';
import { authenticateRequest } from './authenticate.js';
import { uuidv7 } from '../../audit/uuidv7.js';
import { isoNow } from '../../audit/iso-time.js';
import type { HttpExchangeRecord, RecordedIdentity, SessionEndReason, SessionRecorder, StatementRecord } from '../../audit/events.js';
import type { ApprovalBroker } from '../../approval/broker.js';
import { holdAction } from '../../approval/hold-action.js';
import type { ProtocolApprovalRules } from '../../policy/approval-rules.js';
import { checkRequestTarget, describeRequest, RequestPathError, type HttpPolicy, type RouteDecision } from './routes.js';
import { forward, type HttpUpstream } from './forward.js';
import { maskJsonBody, MaskRefusal, readCapped, unmaskableResponse } from './mask.js';

/** How much of each body the record keeps; the SHA-256 covers all of it. */
const RECORDED_BODY_BYTES = 64 * 1024;

export interface HttpSessionContext {
  agentId: string;
  listener: string;
  auth: AuthContext;
  target: HttpUpstream;
  policy: HttpPolicy;
  approvals?: { broker: ApprovalBroker; rules: ProtocolApprovalRules; waited?: (seconds: number, outcome: 'approved' | 'refused') => void };
  recorder: SessionRecorder;
  log: Logger;
  bundleVersion: string;
  maxRequestBytes: number;
  /** Registers the live request so shutdown can end it; returns the unregister function. */
  track(end: (reason: SessionEndReason) => void): () => void;
}

class Refusal extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly extra: Record<string, string> = {}) {
    super(message);
  }
}

function sendJson(res: http.ServerResponse, status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): Buffer {
  const payload = Buffer.from(JSON.stringify(body));
  if (!res.headersSent && !res.destroyed) {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': payload.length, ...headers });
    res.end(payload);
  }
  return payload;
}

/** Response headers that describe the upstream hop or a body the agent rewrote. */
const RESPONSE_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'trailer', 'upgrade', 'proxy-authenticate']);
const REWRITTEN_BODY = new Set(['content-length', 'etag', 'content-md5', 'digest']);

export async function handleExchange(ctx: HttpSessionContext, req: http.IncomingMessage, res: http.ServerResponse, tls: boolean): Promise<void> {
  const sessionId = uuidv7();
  const clientAddress = `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? 0}`;
  const log = ctx.log.child({ sessionId, client: clientAddress });
  const method = (req.method ?? 'GET').toUpperCase();
  if (!ctx.recorder.healthy) {
    sendJson(res, 503, { error: 'unavailable', message: 'Warden cannot record sessions right now; refusing requests until it can' });
    return;
  }

  let authed;
  try {
    authed = await authenticateRequest(req.headers.authorization, ctx.auth);
  } catch (err) {
    const e = err instanceof AuthError ? err : new AuthError((err as Error).message, '28000', 'no_role');
    const status = e.sqlState === '28P01' ? 401 : 403;
    log.info({ status, reason: e.reason }, 'request refused at authentication');
    ctx.recorder.record({ type: 'auth.refused', sessionId, at: isoNow(), agentId: ctx.agentId, listener: ctx.listener, clientAddress, sqlState: e.sqlState, reason: e.message });
    sendJson(res, status, { error: status === 401 ? 'invalid_token' : 'forbidden', message: e.message }, status === 401 ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {});
    req.resume();
    return;
  }
  const { identity, role } = authed;
  const recordedIdentity: RecordedIdentity = { subject: identity.subject, issuer: identity.issuer, groups: identity.groups, ...(identity.tokenId ? { tokenId: identity.tokenId } : {}) };
  ctx.recorder.record({
    type: 'session.start', sessionId, at: isoNow(), agentId: ctx.agentId, listener: ctx.listener, target: ctx.target.name,
    clientAddress, identity: recordedIdentity, role: role.name, tls, ...(req.headers['user-agent'] ? { applicationName: String(req.headers['user-agent']).slice(0, 200) } : {}),
  });

  const started = performance.now();
  const exchange: HttpExchangeRecord = {
    method, path: '', status: 0, responseContentType: '', responseSha256: '', responseBody: '', responseTruncated: false, responseBytes: 0,
    maskedFields: [], requestBody: '', requestBytes: 0,
  };
  const statement: StatementRecord = { protocol: 'http', text: `${method} ?`, rows: 0, durationMs: 0, decision: 'deny' };
  let pending: ReturnType<typeof holdAction> | undefined;
  let endReason: SessionEndReason = 'client_terminate';
  const untrack = ctx.track((reason) => {
    endReason = reason;
    pending?.withdraw(`the agent ended the request (${reason})`);
    res.destroy();
  });
  res.on('close', () => {
    if (!res.writableFinished) {
      if (endReason === 'client_terminate') endReason = 'client_disconnect';
      pending?.withdraw('the client disconnected while the request waited for approval');
    }
  });

  try {
    const { path, query } = checkTarget(req.url ?? '/');
    exchange.path = query ? `${path}?${query}` : path;
    statement.text = describeRequest(method, path, query);
    if (Number(req.headers['content-length'] ?? 0) > ctx.maxRequestBytes) {
      throw new Refusal(413, 'request_too_large', `the request body is larger than ${ctx.maxRequestBytes} bytes`);
    }
    const body = await readCapped(req, ctx.maxRequestBytes, 'the request body').catch((err: Error) => {
      throw err instanceof MaskRefusal ? new Refusal(413, 'request_too_large', err.message) : err;
    });
    exchange.requestBytes = body.length;
    exchange.requestBody = body.subarray(0, RECORDED_BODY_BYTES).toString('utf8');

    const decision = decide(ctx, role.name, method, path);
    statement.ruleIds = [decision.ruleId];
    if (decision.action === 'deny') throw new Refusal(403, 'forbidden', `role "${role.name}" may not ${method} ${path} (rule ${decision.ruleId})`, { rule: decision.ruleId });
    statement.decision = decision.masks.length > 0 ? 'mask' : 'allow';

    const rule = ctx.approvals?.rules.holding(role.name, { http: `${method} ${path}` }, new Date());
    if (rule) {
      if (!ctx.approvals) throw new Refusal(403, 'approval_required', 'this request needs approval, and this agent has no control plane to ask');
      statement.ruleIds.push(rule.id);
      pending = holdAction({
        broker: ctx.approvals.broker, sessionId, identity: recordedIdentity, role: role.name, target: ctx.target.name,
        bundleVersion: ctx.bundleVersion, rule, text: statement.text, payload: Buffer.concat([Buffer.from(exchange.path + '\0'), body]),
        record: (e) => ctx.recorder.record(e),
        waiting: (id) => {
          log.info({ requestId: id, rule: rule.id }, 'request held for approval');
          // A 103 interim response tells the waiting client which request to ask an approver about.
          res.writeEarlyHints({ link: `<urn:warden:approval-request:${id}>; rel="warden-approval"`, 'warden-approval-request': id, 'warden-approval-rule': rule.id });
        },
        ...(ctx.approvals.waited ? { waited: ctx.approvals.waited } : {}),
      });
      const verdict = await pending.verdict;
      pending = undefined;
      statement.approvalRequestId = verdict.requestId;
      if (!verdict.approved) {
        throw new Refusal(403, 'approval_refused', verdict.reason ?? 'not approved', { rule: rule.id, approvalRequestId: verdict.requestId });
      }
      statement.decision = 'approved';
      if (res.destroyed) throw new Refusal(499, 'client_gone', 'the client left before the approval');
    }

    if (!ctx.recorder.healthy) throw new Refusal(503, 'unavailable', 'Warden cannot record sessions right now; nothing is forwarded unrecorded');
    await relayResponse(ctx, req, res, { method, target: exchange.path, body, tls, clientAddress, subject: identity.subject, role: role.name }, decision, exchange, statement);
  } catch (err) {
    const refusal = err instanceof Refusal ? err
      : err instanceof MaskRefusal ? new Refusal(502, 'unmaskable_response', `Warden refused the upstream response: ${err.message}; this route's fields must be masked`)
      : new Refusal(502, 'upstream_error', `the upstream ${ctx.target.name} could not be reached: ${(err as Error).message}`);
    if (refusal.status >= 500) log.warn({ err: refusal.message }, 'request failed');
    // The agent refused (bad path, policy, approver, unmaskable body): deny. An upstream failure keeps the decision made.
    if (refusal.code !== 'upstream_error') statement.decision = 'deny';
    statement.error = { code: refusal.code, message: refusal.message };
    req.resume();
    const payload = sendJson(res, refusal.status, { error: refusal.code, message: refusal.message, ...refusal.extra });
    exchange.status = refusal.status;
    exchange.responseContentType = 'application/json';
    exchange.responseBody = payload.toString('utf8');
    exchange.responseBytes = payload.length;
    exchange.responseSha256 = createHash('sha256').update(payload).digest('hex');
  } finally {
    untrack();
    statement.durationMs = performance.now() - started;
    statement.tag = String(exchange.status);
    statement.http = exchange;
    ctx.recorder.record({ type: 'statement', sessionId, seq: 1, at: isoNow(), bundleVersion: ctx.bundleVersion, ...statement });
    ctx.recorder.record({ type: 'session.end', sessionId, at: isoNow(), reason: endReason, statements: 1 });
  }
}

function checkTarget(url: string): { path: string; query: string } {
  try {
    return checkRequestTarget(url);
  } catch (err) {
    if (err instanceof RequestPathError) throw new Refusal(400, 'bad_path', err.message);
    throw err;
  }
}

function decide(ctx: HttpSessionContext, role: string, method: string, path: string): RouteDecision {
  const policy = ctx.policy.forRole(role);
  if (!policy) throw new Refusal(403, 'forbidden', `role "${role}" has no HTTP policy in bundle ${ctx.bundleVersion}`);
  return policy.decide(method, path);
}

async function relayResponse(
  ctx: HttpSessionContext,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  r: { method: string; target: string; body: Buffer; tls: boolean; clientAddress: string; subject: string; role: string },
  decision: RouteDecision,
  exchange: HttpExchangeRecord,
  statement: StatementRecord,
): Promise<void> {
  const masking = decision.masks.length > 0;
  const up = await forward(ctx.target, { ...r, headers: req.headers, identityEncoding: masking });
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(up.headers)) {
    if (v === undefined || RESPONSE_HOP.has(k) || (masking && REWRITTEN_BODY.has(k))) continue;
    headers[k] = v;
  }
  exchange.status = up.statusCode;
  exchange.responseContentType = String(up.headers['content-type'] ?? '');
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let keptBytes = 0;
  const keep = (chunk: Buffer): void => {
    hash.update(chunk);
    exchange.responseBytes += chunk.length;
    if (keptBytes < RECORDED_BODY_BYTES) {
      kept.push(chunk.subarray(0, RECORDED_BODY_BYTES - keptBytes));
      keptBytes += Math.min(chunk.length, RECORDED_BODY_BYTES - keptBytes);
    }
  };

  const bodyless = r.method === 'HEAD' || up.statusCode === 204 || up.statusCode === 304;
  if (masking && !bodyless) {
    const problem = unmaskableResponse(up.headers);
    const raw = await readCapped(up.body, ctx.target.maxMaskBodyBytes, `the upstream's JSON body`).catch((err: Error) => {
      up.body.destroy();
      throw err;
    });
    if (problem && raw.length > 0) throw new MaskRefusal(problem);
    const masked = raw.length > 0 ? maskJsonBody(raw, decision.masks) : { body: raw, maskedFields: [], maskedValues: 0 };
    exchange.maskedFields = masked.maskedFields;
    statement.maskedValues = masked.maskedValues;
    statement.maskedColumns = masked.maskedFields.map((f) => ({ column: f.slice(0, f.lastIndexOf(':')), strategy: f.slice(f.lastIndexOf(':') + 1) }));
    keep(masked.body);
    res.writeHead(up.statusCode, { ...headers, 'content-length': String(masked.body.length) });
    res.end(masked.body);
  } else {
    res.writeHead(up.statusCode, headers);
    for await (const chunk of up.body) {
      keep(chunk as Buffer);
      if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      if (res.destroyed) {
        up.body.destroy();
        break;
      }
    }
    res.end();
  }
  exchange.responseSha256 = hash.digest('hex');
  exchange.responseBody = Buffer.concat(kept).toString('utf8');
  exchange.responseTruncated = exchange.responseBytes > keptBytes;
  statement.rows = 1;
}
