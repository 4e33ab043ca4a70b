/**
 * One client session on the PostgreSQL engine, top to bottom:
 * authenticate → connect upstream → relay (inspect → forward → record).
 * The listener (listener.ts) has already negotiated TLS and read the
 * StartupMessage.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import { backend } from './wire/backend-messages.js';
import { HandshakeError, type HandshakeReader } from './wire/handshake-reader.js';
import { authenticateClient, type AuthContext } from './authenticate.js';
import { connectUpstream, UpstreamError, type UpstreamTarget } from './upstream-connect.js';
import { Relay } from './relay.js';
import type { StatementPolicy } from './inspect.js';
import type { FieldPolicy } from './mask.js';
import type { CancelRegistry } from './cancel.js';
import { AuthError } from '../../identity/index.js';
import { uuidv7 } from '../../audit/uuidv7.js';
import { isoNow } from '../../audit/iso-time.js';
import type { ResultRecording, SessionEndReason, SessionRecorder, StatementEvent } from '../../audit/events.js';
import type { ApprovalBroker } from '../../approval/broker.js';
import { StatementHolds } from './hold.js';
import { NativeRelayLoop, type NativeRelay } from './native-relay.js';

/** Command tags after which the catalog (tables, columns, views) may have changed. */
const DDL_TAG = /^(CREATE|ALTER|DROP|COMMENT|GRANT|REVOKE|SELECT INTO|REFRESH|IMPORT)\b/;

/** Session parameters a client may set at startup; anything else (e.g. `options`) is dropped. */
const FORWARDED_PARAMS = new Set(['application_name', 'client_encoding', 'datestyle', 'timezone', 'extra_float_digits', 'intervalstyle']);

export interface SessionContext {
  agentId: string;
  listener: string;
  auth: AuthContext;
  target: UpstreamTarget;
  recorder: SessionRecorder;
  /** What the record keeps of results (sample rows, hash of the stream as sent). */
  results?: ResultRecording;
  cancels: CancelRegistry;
  log: Logger;
  maxMessageBytes: number;
  /**
   * The session's policy for a role, ready to decide (the target's catalog loaded). Absent when the
   * agent runs relay-only; rejects when the catalog cannot be read (the session is then refused).
   */
  preparePolicy?: (role: string) => Promise<(StatementPolicy & FieldPolicy) | null>;
  /** Version (commit) of the policy in force, recorded with each decision. */
  bundleVersion?: () => string | undefined;
  /** Called after a statement that changed the schema: cached analyses must be redone. */
  onDdl?: () => void;
  /** Where held statements ask for approval (every agent has one; unmanaged ones refuse what needs approval). */
  approvals?: ApprovalBroker;
  /** Observes how long held statements waited. */
  observeApprovalWait?: (seconds: number, outcome: 'approved' | 'refused') => void;
  /** The native relay, for sessions relayed without policy (relay-only enforcement). */
  nativeRelay?: NativeRelayLoop | undefined;
  /** Registers the live session so shutdown can drain and end it. */
  track(session: LiveSession): () => void;
}

/** What shutdown needs of a live session (the relay provides both). */
export interface LiveSession {
  end(reason: SessionEndReason): void;
  /** Lets the statement in flight finish (up to `graceMs`), then ends the session with 57P01. */
  shutdown(graceMs: number): Promise<void>;
}

export interface SessionStart {
  socket: net.Socket;
  reader: HandshakeReader;
  params: Map<string, string>;
  tls: boolean;
  clientAddress: string;
}

function fatal(socket: net.Socket, code: string, message: string, hint?: string): void {
  if (socket.destroyed) return;
  socket.end(backend.errorResponse({ severity: 'FATAL', code, message, ...(hint ? { hint } : {}) }));
}

function vetParams(params: Map<string, string>, target: UpstreamTarget): Record<string, string> {
  if (params.has('replication')) {
    throw new HandshakeError('replication connections are not supported through Warden', '0A000');
  }
  const database = params.get('database') ?? params.get('user');
  if (database !== undefined && database !== target.name && database !== target.database) {
    throw new HandshakeError(`database "${database}" is not served by this listener; connect to "${target.name}"`, '3D000');
  }
  const forwarded: Record<string, string> = {};
  for (const [key, value] of params) {
    if (FORWARDED_PARAMS.has(key.toLowerCase())) forwarded[key] = value;
  }
  return forwarded;
}

export async function runSession(ctx: SessionContext, start: SessionStart): Promise<void> {
  const { socket, reader } = start;
  const sessionId = uuidv7();
  const log = ctx.log.child({ sessionId, client: start.clientAddress });
  const at = isoNow;
  let authed: Awaited<ReturnType<typeof authenticateClient>>;
  if (!ctx.recorder.healthy) {
    // Fail closed: a session that cannot be recorded does not start.
    fatal(socket, '57P03', 'Warden cannot record sessions right now; refusing new sessions until it can');
    reader.detach();
    return;
  }
  let forwarded: Record<string, string>;

  try {
    forwarded = vetParams(start.params, ctx.target);
    authed = await authenticateClient(socket, reader, ctx.auth);
  } catch (err) {
    const code = err instanceof AuthError || err instanceof HandshakeError ? err.sqlState : '28000';
    const reason = err instanceof AuthError ? err.reason : 'handshake';
    log.info({ code, reason }, 'login refused');
    ctx.recorder.record({
      type: 'auth.refused',
      sessionId,
      at: at(),
      agentId: ctx.agentId,
      listener: ctx.listener,
      clientAddress: start.clientAddress,
      sqlState: code,
      reason: (err as Error).message,
    });
    fatal(socket, code, (err as Error).message);
    reader.detach();
    return;
  }

  const { identity, role } = authed;
  socket.write(backend.authenticationOk());
  let upstream;
  try {
    upstream = await connectUpstream(ctx.target, forwarded);
  } catch (err) {
    const e = err as UpstreamError;
    log.warn({ code: e.sqlState, upstreamCode: e.serverFields?.code, err: e.message }, 'upstream connection failed');
    fatal(socket, e.sqlState ?? '08006', e.message);
    reader.detach();
    ctx.recorder.record({ type: 'session.end', sessionId, at: at(), reason: 'upstream_error', detail: e.message, statements: 0 });
    return;
  }
  let policy: (StatementPolicy & FieldPolicy) | null = null;
  if (ctx.preparePolicy) {
    try {
      policy = await ctx.preparePolicy(role.name);
      if (!policy) throw new Error(`role "${role.name}" has no policy in the bundle`);
    } catch (err) {
      // Without a catalog no statement can be classified: refuse the session rather than relay blind.
      log.error({ err: (err as Error).message }, 'policy not ready');
      upstream.socket.destroy();
      fatal(socket, '08006', `Warden cannot classify statements for target ${ctx.target.name} right now; try again shortly`);
      reader.detach();
      ctx.recorder.record({ type: 'session.end', sessionId, at: at(), reason: 'upstream_error', detail: (err as Error).message, statements: 0 });
      return;
    }
  }
  if (socket.destroyed) {
    upstream.socket.destroy();
    reader.detach();
    return;
  }

  let relay: Relay | NativeRelay | undefined;
  const key = ctx.cancels.register(ctx.target, upstream.processId, upstream.secretKey, () => relay?.cancelHeld() ?? false);
  const hello: Buffer[] = upstream.parameters.map(([k, v]) => backend.parameterStatus(k, v));
  hello.push(backend.backendKeyData(key.processId, key.secretKey), backend.readyForQuery('I'));
  socket.write(Buffer.concat(hello));

  const recordedIdentity = {
    subject: identity.subject,
    issuer: identity.issuer,
    groups: identity.groups,
    ...(identity.tokenId ? { tokenId: identity.tokenId } : {}),
  };
  ctx.recorder.record({
    type: 'session.start',
    sessionId,
    at: at(),
    agentId: ctx.agentId,
    listener: ctx.listener,
    target: ctx.target.name,
    clientAddress: start.clientAddress,
    identity: recordedIdentity,
    role: role.name,
    tls: start.tls,
    ...(start.params.has('application_name') ? { applicationName: start.params.get('application_name')! } : {}),
  });
  log.info({ sub: identity.subject, role: role.name }, 'session started');

  const bundleVersion = ctx.bundleVersion?.();
  const broker = ctx.approvals;
  const session = { id: sessionId, bundleVersion };
  let untrack: () => void = () => undefined;
  const onStatement = (event: StatementEvent): void => {
    if (event.tag && DDL_TAG.test(event.tag)) ctx.onDdl?.();
    ctx.recorder.record(event);
  };
  // A recorder that keeps JSON lines takes relay-only statements as the lines the native relay wrote
  // (relay-only sessions have no policy catalog to refresh after DDL, and every decision is unchecked).
  const lines = ctx.recorder.recordStatementLine?.bind(ctx.recorder);
  const onStatementLine = lines ? (line: Buffer): void => lines(line, 'unchecked') : undefined;
  const onEnd = (reason: SessionEndReason, detail: string | undefined, busy: boolean): void => {
    untrack();
    // A client that vanished mid-query (or a shutdown past its grace) must not leave the query running upstream.
    if (busy && (reason === 'client_disconnect' || reason === 'agent_shutdown')) {
      void ctx.cancels
        .cancel(key.processId, key.secretKey)
        .catch(() => undefined)
        .finally(() => ctx.cancels.unregister(key.processId));
    } else {
      ctx.cancels.unregister(key.processId);
    }
    const statements = relay?.statements ?? 0;
    ctx.recorder.record({ type: 'session.end', sessionId, at: at(), reason, ...(detail ? { detail } : {}), statements });
    log.info({ reason, statements }, 'session ended');
  };

  // Nothing to decide before a byte moves: the native relay carries the session (native-relay.ts).
  if (!policy && ctx.nativeRelay && NativeRelayLoop.eligible(socket, upstream.socket)) {
    const native = ctx.nativeRelay.start(
      {
        client: socket,
        upstream: upstream.socket,
        ...(upstream.reader ? { upstreamReader: upstream.reader } : {}),
        maxMessageBytes: ctx.maxMessageBytes,
        ...(ctx.results ? { results: ctx.results } : {}),
        session,
        onStatement,
        ...(onStatementLine && { onStatementLine }),
        onEnd,
      },
      reader.detach(),
    );
    relay = native;
    untrack = ctx.track(native);
    native.start();
    return;
  }

  const js = new Relay({
    client: socket,
    upstream: upstream.socket,
    ...(upstream.reader ? { upstreamReader: upstream.reader } : {}),
    maxMessageBytes: ctx.maxMessageBytes,
    policy,
    canRecord: () => ctx.recorder.healthy,
    ...(policy && broker
      ? {
          holds: (notify: (m: Buffer) => void) =>
            new StatementHolds({
              broker,
              sessionId,
              identity: recordedIdentity,
              role: role.name,
              target: ctx.target.name,
              bundleVersion: bundleVersion ?? '',
              restrictsPhi: policy!.restrictsPhi,
              notify,
              record: (e) => ctx.recorder.record(e),
              ...(ctx.observeApprovalWait ? { waited: ctx.observeApprovalWait } : {}),
            }),
        }
      : {}),
    ...(ctx.results ? { results: ctx.results } : {}),
    session,
    onStatement,
    onEnd,
  });
  relay = js;
  untrack = ctx.track(js);
  js.start(reader.detach());
}
