/**
 * The agent's link to the control plane. The agent dials out (it may sit in
 * a private network): Enroll once with a token, then keep one Connect
 * stream open — answer the challenge with a signature of the enrolled key,
 * receive signed bundles, apply them, acknowledge, send heartbeats — and
 * reconnect with jittered exponential backoff whenever the stream drops.
 * While disconnected the agent keeps enforcing the bundle it has.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import type { Logger } from 'pino';
import {
  AgentMessageSchema,
  AgentService,
  createGrpcClient,
  helloSignedBytes,
  type ControlMessage,
  type ControlPlaneInfo,
  type PolicyBundle,
} from '../../../proto/src/index.js';
import type { AgentIdentity } from './agent-identity.js';
import { saveBundle, verifyBundle, type SignedBundle } from './bundle-cache.js';
import type { DurableSpool, SpooledEvent } from '../audit/durable-spool.js';
import type { ApprovalBroker } from '../approval/broker.js';

export const AGENT_VERSION = '0.1.0';

function keysOf(info: ControlPlaneInfo | undefined, which: 'bundleSigningKeys' | 'approvalSigningKeys' = 'bundleSigningKeys'): Record<string, string> {
  return Object.fromEntries((info?.[which] ?? []).map((k) => [k.keyId, Buffer.from(k.publicKey).toString('base64')]));
}

/** Enrolls with a one-time or reusable token; returns the identity with its agent id saved. */
export function enroll(
  address: string,
  credentials: grpc.ChannelCredentials,
  identity: AgentIdentity,
  opts: { token: string; name: string; labels?: Record<string, string>; timeoutMs?: number },
): Promise<AgentIdentity> {
  const client = createGrpcClient(AgentService, address, credentials);
  return new Promise((resolve, reject) => {
    client.enroll(
      { enrollmentToken: opts.token, agentName: opts.name, publicKey: identity.publicKey, labels: opts.labels ?? {}, agentVersion: AGENT_VERSION },
      { deadline: Date.now() + (opts.timeoutMs ?? 10_000) },
      (err, res) => {
        client.close();
        if (err || !res) return reject(new Error(`enrollment refused: ${err?.details ?? err?.message ?? 'no answer'}`));
        resolve(
          identity.save({
            agentId: res.agentId,
            name: opts.name,
            labels: opts.labels ?? {},
            controlPlaneId: res.controlPlane?.id ?? '',
            bundleKeys: keysOf(res.controlPlane),
          }),
        );
      },
    );
  });
}

export interface ControlLinkOptions {
  address: string;
  credentials: grpc.ChannelCredentials;
  identity: AgentIdentity;
  stateDir: string;
  log: Logger;
  appliedVersion(): string | undefined;
  /** Applies a verified bundle; throwing reports the failure to the control plane and keeps the old one. */
  apply(bundle: PolicyBundle): Promise<void>;
  activeSessions(): number;
  backoff?: { initialMs: number; maxMs: number };
  /** The durable spool: its events are streamed, replayed on every (re)connect, and dropped once acknowledged. */
  spool?: DurableSpool;
  /** Held statements' approval requests go out, and signed decisions come back, over this link. */
  approvals?: ApprovalBroker;
}

const AUDIT_BATCH = 500;

export class ControlLink extends EventEmitter<{ applied: [string]; rejected: [string, string]; connected: []; disconnected: [string] }> {
  private client: ReturnType<typeof createGrpcClient<typeof AgentService>> | null = null;
  private stream: grpc.ClientDuplexStream<unknown, ControlMessage> | null = null;
  private attempt = 0;
  private stopped = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private keys: Record<string, string>;
  private readonly approvalKeys: Record<string, string> = {};
  connected = false;

  constructor(private readonly opts: ControlLinkOptions) {
    super();
    if (!opts.identity.info) throw new Error('the agent is not enrolled yet');
    this.keys = { ...opts.identity.info.bundleKeys };
  }

  /** Keys whose signatures on approval decisions this agent accepts: the pinned bundle keys and those the control plane announced. */
  trustedApprovalKeys(): Record<string, string> {
    return { ...this.approvalKeys, ...this.keys };
  }

  start(): void {
    this.stopped = false;
    this.client = createGrpcClient(AgentService, this.opts.address, this.opts.credentials);
    this.open();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.stream?.cancel();
    this.client?.close();
  }

  private open(): void {
    const info = this.opts.identity.info!;
    const stream = this.client!.connect() as unknown as grpc.ClientDuplexStream<unknown, ControlMessage>;
    this.stream = stream;
    const send = (kind: Parameters<typeof create<typeof AgentMessageSchema>>[1]): void => {
      stream.write(create(AgentMessageSchema, kind));
    };
    stream.on('data', (msg: ControlMessage) => {
      const k = msg.kind;
      switch (k.case) {
        case 'challenge':
          send({
            kind: {
              case: 'hello',
              value: {
                agentId: info.agentId,
                agentVersion: AGENT_VERSION,
                appliedBundleVersion: this.opts.appliedVersion() ?? '',
                signature: this.opts.identity.sign(helloSignedBytes(info.agentId, k.value.nonce)),
              },
            },
          });
          return;
        case 'welcome': {
          this.attempt = 0;
          this.connected = true;
          Object.assign(this.keys, keysOf(k.value.controlPlane));
          Object.assign(this.approvalKeys, keysOf(k.value.controlPlane, 'approvalSigningKeys'));
          const every = Number(k.value.controlPlane?.heartbeatInterval?.seconds ?? 10n) * 1000 || 10_000;
          if (this.heartbeat) clearInterval(this.heartbeat);
          this.heartbeat = setInterval(() => send({ kind: { case: 'heartbeat', value: { sentAt: timestampNow(), activeSessions: this.opts.activeSessions() } } }), every);
          this.heartbeat.unref();
          const spool = this.opts.spool;
          if (spool) {
            // Everything not yet acknowledged goes first (the control plane drops what it already has).
            const sendEvents = (events: SpooledEvent[]): void => {
              for (let i = 0; i < events.length; i += AUDIT_BATCH) {
                const slice = events.slice(i, i + AUDIT_BATCH);
                send({ kind: { case: 'auditBatch', value: { events: slice.map((e) => e.bytes) } } });
              }
            };
            sendEvents(spool.pending());
            spool.sink = sendEvents;
          }
          // Requests still waiting are (re)sent: a control plane that restarted learns of them again.
          this.opts.approvals?.attach(send);
          this.emit('connected');
          return;
        }
        case 'approvalDecision': {
          const problem = this.opts.approvals?.onDecision(k.value);
          if (problem) this.opts.log.error({ requestId: k.value.requestId, problem }, 'approval decision refused');
          return;
        }
        case 'auditAck':
          this.opts.spool?.ack(k.value.sessionId, Number(k.value.upToSequence));
          return;
        case 'bundleUpdate':
          void this.onBundle({ version: k.value.version, bytes: k.value.bundle, signature: k.value.signature, keyId: k.value.keyId }, send);
          return;
        default:
      }
    });
    const lost = (why: string): void => {
      if (this.stream !== stream) return;
      this.stream = null;
      this.connected = false;
      if (this.opts.spool) this.opts.spool.sink = undefined;
      this.opts.approvals?.detach();
      if (this.heartbeat) clearInterval(this.heartbeat);
      this.emit('disconnected', why);
      if (this.stopped) return;
      // Jittered exponential backoff: agents that lost the same control plane do not return in lockstep.
      const { initialMs, maxMs } = this.opts.backoff ?? { initialMs: 250, maxMs: 30_000 };
      const delay = Math.min(maxMs, initialMs * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      this.opts.log.warn({ why, retryInMs: Math.round(delay) }, 'control plane link lost');
      this.retry = setTimeout(() => this.open(), delay);
    };
    stream.on('error', (err: grpc.ServiceError) => lost(err.details || err.message));
    stream.on('end', () => lost('stream ended'));
  }

  private async onBundle(signed: SignedBundle, send: (m: Parameters<typeof create<typeof AgentMessageSchema>>[1]) => void): Promise<void> {
    try {
      const bundle = verifyBundle(signed, this.keys);
      if (bundle.version !== this.opts.appliedVersion()) await this.opts.apply(bundle);
      saveBundle(this.opts.stateDir, signed);
      send({ kind: { case: 'bundleAck', value: { version: signed.version, ok: true, appliedAt: timestampNow() } } });
      this.emit('applied', signed.version);
    } catch (err) {
      const message = (err as Error).message;
      this.opts.log.error({ version: signed.version, err: message }, 'bundle refused; keeping the one in force');
      send({ kind: { case: 'bundleAck', value: { version: signed.version, ok: false, error: message } } });
      this.emit('rejected', signed.version, message);
    }
  }
}
