/**
 * One client connection on the SSH engine, top to bottom:
 * authenticate (token → role) → connect upstream with the agent's key →
 * per channel: decide + hold (hold.ts) → forward to the same kind of
 * channel upstream (shell with or without PTY, exec, sftp, direct-tcpip)
 * → record (statements, asciicast terminal stream, exit status).
 *
 * Window changes and signals are passed to the upstream channel; the exit
 * status (or signal) of the upstream command is the client's.
 */
import type ssh2 from 'ssh2';
import type { Logger } from 'pino';
import type { AuthContext } from '../../identity/index.js';
import { uuidv7 } from '../../audit/uuidv7.js';
import { isoNow } from '../../audit/iso-time.js';
import type { RecordedIdentity, SessionEndReason, SessionRecorder, StatementRecord } from '../../audit/events.js';
import type { ApprovalBroker } from '../../approval/broker.js';
import type { ProtocolApprovalRules } from '../../policy/approval-rules.js';
import { authenticateRequest, MAX_AUTH_ATTEMPTS } from './authenticate.js';
import { describeAction, type SshAction, type SshPolicy } from './decide.js';
import { gate, type GateContext, type GateResult } from './hold.js';
import { connectSshUpstream, type SshUpstream } from './upstream.js';
import { TerminalRecorder } from './record.js';

/** Exit status a refused shell or command ends with (as a shell reports "cannot execute"). */
export const REFUSED_EXIT_STATUS = 126;

const LOGIN_TIMEOUT_MS = 30_000;

export interface SshSessionContext {
  agentId: string;
  listener: string;
  auth: AuthContext;
  target: SshUpstream;
  policy: SshPolicy;
  approvals?: { broker: ApprovalBroker; rules: ProtocolApprovalRules; waited?: (seconds: number, outcome: 'approved' | 'refused') => void };
  recorder: SessionRecorder;
  log: Logger;
  bundleVersion: string;
  track(end: (reason: SessionEndReason) => void): () => void;
}

type Upstream = { conn: ssh2.Client } | { error: string };

/** Ends a channel the agent will not run: the reason on stderr, exit status 126, and the channel closed. */
function refuseChannel(stream: ssh2.ServerChannel, reason: string): void {
  if (stream.destroyed) return;
  stream.stderr.write(`Warden: ${reason}\r\n`);
  stream.exit(REFUSED_EXIT_STATUS);
  stream.end();
  // Packets go out in order: the close follows the message and the status, and the client's channel ends for certain.
  stream.close();
}

export function runSshConnection(ctx: SshSessionContext, client: ssh2.Connection, info: ssh2.ClientInfo): void {
  const sessionId = uuidv7();
  const clientAddress = `${info.ip}:${info.port}`;
  const log = ctx.log.child({ sessionId, client: clientAddress });
  const at = isoNow;
  let failures = 0;
  let authed: { identity: RecordedIdentity; role: string; username: string } | undefined;
  let upstream: Promise<Upstream> | undefined;
  let conn: ssh2.Client | undefined;
  let seq = 0;
  let channels = 0;
  let ended = false;
  /** Why the session ends: the first cause seen wins; none means the client left. */
  let endReason: SessionEndReason | undefined;

  client.on('error', (err) => log.debug({ err: err.message }, 'client connection error'));
  // Interactive traffic: no Nagle delay (ssh2's server Connection has setNoDelay; its typings omit it).
  (client as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
  // A connection that does not log in within the limit is dropped (it holds a socket and a handshake).
  const loginTimer = setTimeout(() => client.end(), LOGIN_TIMEOUT_MS);
  client.once('close', () => clearTimeout(loginTimer));
  client.on('authentication', (actx) => {
    if (!ctx.recorder.healthy) {
      // Fail closed: a session that cannot be recorded does not start.
      actx.reject();
      client.end();
      return;
    }
    void authenticateRequest(actx, ctx.auth).then((r) => {
      if (!r) return;
      if (r.ok) {
        const id = r.authed.identity;
        authed = { identity: { subject: id.subject, issuer: id.issuer, groups: id.groups, ...(id.tokenId ? { tokenId: id.tokenId } : {}) }, role: r.authed.role.name, username: r.username };
        actx.accept();
        return;
      }
      failures++;
      log.info({ reason: r.error.reason }, 'ssh login refused');
      ctx.recorder.record({ type: 'auth.refused', sessionId, at: at(), agentId: ctx.agentId, listener: ctx.listener, clientAddress, sqlState: r.error.sqlState, reason: r.error.message });
      if (failures >= MAX_AUTH_ATTEMPTS) client.end();
    });
  });

  client.on('ready', () => {
    clearTimeout(loginTimer);
    const who = authed!;
    ctx.recorder.record({
      type: 'session.start', sessionId, at: at(), agentId: ctx.agentId, listener: ctx.listener, target: ctx.target.name, clientAddress,
      identity: who.identity, role: who.role, tls: true, applicationName: `ssh as ${who.username}`.slice(0, 200),
    });
    log.info({ sub: who.identity.subject, role: who.role }, 'ssh session started');
    const untrack = ctx.track((reason) => {
      endReason ??= reason;
      client.end();
    });
    upstream = connectSshUpstream(ctx.target).then(
      (c) => {
        conn = c;
        c.on('error', (err) => log.warn({ err: err.message }, 'upstream ssh error'));
        c.on('close', () => {
          if (!ended) endReason ??= 'upstream_closed';
          client.end();
        });
        if (ended) c.end();
        return { conn: c };
      },
      (err: Error) => {
        log.warn({ err: err.message }, 'upstream ssh connection failed');
        endReason ??= 'upstream_error';
        return { error: err.message };
      },
    );
    const gateCtx: GateContext = {
      policy: ctx.policy.forRole(who.role), sessionId, identity: who.identity, role: who.role, target: ctx.target.name, bundleVersion: ctx.bundleVersion,
      record: (e) => ctx.recorder.record(e),
      ...(ctx.approvals ? { approvals: ctx.approvals } : {}),
    };
    const recordStatement = (action: SshAction, g: GateResult, started: number, extra: Partial<StatementRecord> = {}): void => {
      ctx.recorder.record({
        type: 'statement', sessionId, seq: ++seq, at: at(), bundleVersion: ctx.bundleVersion, protocol: 'ssh', text: describeAction(action), rows: 0,
        durationMs: performance.now() - started, decision: g.decision, ruleIds: g.ruleIds,
        ...(g.approvalRequestId ? { approvalRequestId: g.approvalRequestId } : {}),
        ...(g.allowed ? {} : { error: { code: 'refused', message: g.reason ?? 'refused' } }),
        ...extra,
      });
    };

    client.on('session', (acceptSession) => {
      const session = acceptSession();
      const channel = ++channels;
      let pty: ssh2.PseudoTtyInfo | undefined;
      let up: ssh2.ClientChannel | undefined;
      let rec: TerminalRecorder | undefined;
      session.on('pty', (accept, _reject, ptyInfo) => {
        pty = ptyInfo;
        accept?.();
      });
      session.on('window-change', (accept, _reject, w) => {
        if (pty) pty = { ...pty, cols: w.cols, rows: w.rows, width: w.width, height: w.height };
        up?.setWindow(w.rows, w.cols, w.height, w.width);
        rec?.resize(w.cols, w.rows);
        accept?.();
      });
      session.on('signal', (accept, _reject, s) => {
        up?.signal(s.name);
        accept?.();
      });
      session.on('env', (_accept, reject) => reject?.());
      session.on('auth-agent', (_accept, reject) => reject?.());
      session.on('x11', (_accept, reject) => reject?.());

      const run = async (stream: ssh2.ServerChannel, action: SshAction): Promise<void> => {
        const started = performance.now();
        if (!ctx.recorder.healthy) {
          refuseChannel(stream, 'Warden cannot record sessions right now; nothing runs unrecorded');
          return;
        }
        let g = await gate(gateCtx, action, stream);
        const u = g.allowed ? await upstream! : undefined;
        if (u && 'error' in u) g = { ...g, allowed: false, decision: 'deny', reason: `Warden cannot reach ${ctx.target.name}: ${u.error}` };
        if (!g.allowed || !u || 'error' in u) {
          recordStatement(action, g, started);
          refuseChannel(stream, g.reason ?? 'refused');
          return;
        }
        const window = pty ? { rows: pty.rows, cols: pty.cols, height: pty.height, width: pty.width, term: pty.term, modes: pty.modes } : undefined;
        const open = (cb: (err: Error | undefined, ch: ssh2.ClientChannel) => void): void => {
          if (action.kind === 'shell') u.conn.shell(window ?? false, cb);
          else if (action.kind === 'exec') u.conn.exec(action.command, window ? { pty: window } : {}, cb);
          else u.conn.subsys((action as { name: string }).name, cb);
        };
        open((err, ch) => {
          if (err) {
            recordStatement(action, { ...g, allowed: false, reason: `the target refused: ${err.message}` }, started);
            refuseChannel(stream, `the target refused: ${err.message}`);
            return;
          }
          up = ch;
          // sftp is a binary protocol, not a terminal: it is recorded as a statement only.
          if (action.kind !== 'subsystem') {
            rec = new TerminalRecorder(sessionId, channel, { width: pty?.cols || 80, height: pty?.rows || 24, ...(pty ? { term: pty.term } : {}), ...(action.kind === 'exec' ? { command: action.command } : {}) }, (e) => ctx.recorder.record(e));
          }
          let exit = '';
          stream.on('data', (d: Buffer) => {
            rec?.input(d);
            ch.write(d);
          });
          stream.on('end', () => ch.end());
          stream.on('close', () => ch.close());
          ch.on('data', (d: Buffer) => {
            if (!ctx.recorder.healthy) {
              // The recording broke (disk full, I/O error): the terminal stops rather than run unrecorded.
              stream.stderr.write('\r\nWarden: the session can no longer be recorded; closing this channel\r\n');
              ch.close();
              return;
            }
            rec?.output(d);
            stream.write(d);
          });
          ch.stderr.on('data', (d: Buffer) => {
            rec?.output(d);
            stream.stderr.write(d);
          });
          ch.on('exit', (code: number | null, signal?: string, core?: boolean, desc?: string) => {
            if (typeof code === 'number') {
              exit = `exit ${code}`;
              stream.exit(code);
            } else if (signal) {
              exit = `signal ${signal}`;
              stream.exit(signal, core ?? false, desc ?? '');
            }
          });
          ch.on('close', () => {
            rec?.close();
            recordStatement(action, g, started, { tag: exit || 'closed' });
            stream.end();
          });
        });
      };

      session.on('shell', (accept) => void run(accept(), { kind: 'shell' }));
      session.on('exec', (accept, _reject, e) => void run(accept(), { kind: 'exec', command: e.command }));
      session.on('subsystem', (accept, reject, s) => {
        const action: SshAction = { kind: 'subsystem', name: s.name };
        const v = gateCtx.policy.decide(action);
        if (!v.allowed) {
          recordStatement(action, { allowed: false, decision: 'deny', reason: v.reason, ruleIds: [] }, performance.now());
          reject();
          return;
        }
        void run(accept(), action);
      });
    });

    client.on('tcpip', (accept, reject, t) => {
      const action: SshAction = { kind: 'forward', host: t.destIP, port: t.destPort };
      const started = performance.now();
      const v = gateCtx.policy.decide(action);
      if (!v.allowed) {
        recordStatement(action, { allowed: false, decision: 'deny', reason: v.reason, ruleIds: [] }, started);
        reject();
        return;
      }
      void upstream!.then((u) => {
        if ('error' in u) return reject();
        u.conn.forwardOut(t.srcIP, t.srcPort, t.destIP, t.destPort, (err, ch) => {
          if (err) return reject();
          const stream = accept();
          stream.pipe(ch).pipe(stream);
          ch.on('close', () => recordStatement(action, { allowed: true, decision: 'allow', ruleIds: [] }, started, { tag: 'closed' }));
        });
      });
    });
    // Remote (reverse) forwarding and streamlocal are never offered.
    client.on('request', (_accept, reject) => reject?.());
    client.on('openssh.streamlocal', (_accept, reject) => reject());

    client.on('close', () => {
      ended = true;
      untrack();
      conn?.end();
      const reason = endReason ?? 'client_disconnect';
      ctx.recorder.record({ type: 'session.end', sessionId, at: at(), reason, statements: seq });
      log.info({ reason, statements: seq }, 'ssh session ended');
    });
  });
}
