/**
 * The AgentService the agents dial: Enroll with a token (their public key
 * is recorded), then one Connect stream per agent — a fresh challenge the
 * agent must sign with its enrolled key, the current signed bundle, every
 * newly published one, and the agent's acknowledgements and heartbeats.
 */
import { randomBytes, createPublicKey, verify } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import type { AuditChain, AuditRecordInput } from '../audit/hash-chain.js';
import { auditRecordOf } from '../audit/audit-record.js';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import type { Logger } from 'pino';
import {
  AgentService,
  PolicyBundleSchema,
  addGrpcService,
  helloSignedBytes,
  type AgentMessage,
  type ControlMessageSchema,
  type GrpcServiceImplementation,
  type PolicyBundle,
} from '../../../proto/src/index.js';
import { AgentRegistry, EnrollmentError } from './agent-registry.js';
import type { SigningKey } from './signing-key.js';
import { decisionOf, type ApprovalService } from '../approvals/approval-service.js';

interface SignedBundle {
  version: string;
  bytes: Uint8Array;
  signature: Uint8Array;
}

type Stream = grpc.ServerDuplexStream<AgentMessage, MessageInitShape<typeof ControlMessageSchema>>;

export class Distribution extends EventEmitter<{ acked: [agentId: string, version: string]; rejected: [agentId: string, version: string, error: string] }> {
  private current: SignedBundle | undefined;
  private readonly streams = new Map<string, Stream>();

  constructor(
    private readonly registry: AgentRegistry,
    private readonly key: SigningKey,
    private readonly log: Logger,
    private readonly heartbeatSeconds = 10,
    /** Where agents' audit events are appended; acknowledged only after the durable write. */
    private readonly audit?: AuditChain,
  ) {
    super();
  }

  private approvals: ApprovalService | undefined;

  /** Approval requests from agents go to `service`; its decisions go back to whichever agent is connected here. */
  attachApprovals(service: ApprovalService): void {
    this.approvals = service;
    service.on('decided', (a) => {
      const stream = this.streams.get(a.agentId);
      const decision = decisionOf(a);
      if (stream && decision) stream.write({ kind: { case: 'approvalDecision', value: decision } });
    });
  }

  get connected(): string[] {
    return [...this.streams.keys()];
  }

  private info(): { id: string; version: string; bundleSigningKeys: Array<{ keyId: string; publicKey: Uint8Array }>; approvalSigningKeys: Array<{ keyId: string; publicKey: Uint8Array }>; heartbeatInterval: { seconds: bigint } } {
    const keys = [{ keyId: this.key.keyId, publicKey: this.key.spki }];
    return { id: 'warden-control-plane', version: '0.1.0', bundleSigningKeys: keys, approvalSigningKeys: keys, heartbeatInterval: { seconds: BigInt(this.heartbeatSeconds) } };
  }

  /** Signs a bundle and pushes it to every connected agent. */
  publish(bundle: PolicyBundle): void {
    const bytes = toBinary(PolicyBundleSchema, bundle);
    this.current = { version: bundle.version, bytes, signature: this.key.sign(bytes) };
    for (const stream of this.streams.values()) this.push(stream);
  }

  private push(stream: Stream): void {
    const c = this.current;
    if (!c) return;
    stream.write({ kind: { case: 'bundleUpdate', value: { version: c.version, bundle: c.bytes, signature: c.signature, keyId: this.key.keyId } } });
  }

  readonly service: GrpcServiceImplementation<typeof AgentService> = {
    enroll: (call, callback) => {
      const req = call.request;
      void (async () => {
        try {
          if (req.publicKey.length === 0 || !req.agentName) throw new Error('incomplete enrollment request');
          createPublicKey({ key: Buffer.from(req.publicKey), format: 'der', type: 'spki' });
          const labels = { ...(await this.registry.consume(req.enrollmentToken)), ...req.labels };
          const id = await this.registry.register(req.agentName, labels, req.publicKey);
          this.log.info({ agentId: id, name: req.agentName }, 'agent enrolled');
          callback(null, { agentId: id, controlPlane: this.info() });
        } catch (err) {
          const details = err instanceof EnrollmentError ? `enrollment token ${err.problem}` : 'invalid enrollment request (name and an Ed25519 public key are required)';
          callback({ code: err instanceof EnrollmentError ? grpc.status.UNAUTHENTICATED : grpc.status.INVALID_ARGUMENT, details, name: 'EnrollError', message: details, metadata: new grpc.Metadata() });
        }
      })();
    },

    connect: (call) => {
      const stream = call as unknown as Stream;
      const nonce = randomBytes(32);
      let agentId: string | undefined;
      let auditQueue: Promise<void> = Promise.resolve();
      let auditFailed = false;
      const waiting: AuditRecordInput[] = [];
      const drainAudit = async (id: string): Promise<void> => {
        // Bounded transactions: a long replay after an outage is written in steps.
        const events = waiting.splice(0, 5000);
        if (auditFailed || events.length === 0) return;
        try {
          await this.audit!.append(events);
        } catch (err) {
          // Acknowledge nothing more on this stream: the agent reconnects and replays all it holds.
          auditFailed = true;
          this.log.error({ agentId: id, err: (err as Error).message }, 'audit append failed; closing the stream so the agent replays');
          stream.emit('error', { code: grpc.status.UNAVAILABLE, details: 'audit log unavailable' });
          return;
        }
        const upTo = new Map<string, number>();
        for (const e of events) upTo.set(e.sessionId, Math.max(upTo.get(e.sessionId) ?? 0, e.sessionSeq));
        for (const [sessionId, seq] of upTo) stream.write({ kind: { case: 'auditAck', value: { sessionId, upToSequence: BigInt(seq) } } });
        if (waiting.length > 0) auditQueue = auditQueue.then(() => drainAudit(id));
      };
      const refuse = (details: string): void => {
        stream.emit('error', { code: grpc.status.UNAUTHENTICATED, details });
      };
      stream.write({ kind: { case: 'challenge', value: { nonce } } });
      stream.on('data', (msg: AgentMessage) => {
        void (async () => {
          const k = msg.kind;
          if (!agentId) {
            if (k.case !== 'hello') return refuse('the first message must be Hello');
            const agent = await this.registry.get(k.value.agentId);
            const key = agent ? createPublicKey({ key: agent.publicKey, format: 'der', type: 'spki' }) : undefined;
            if (!agent || !key || !verify(null, helloSignedBytes(k.value.agentId, nonce), key, k.value.signature)) {
              return refuse('unknown agent or bad signature');
            }
            agentId = agent.id;
            this.streams.get(agentId)?.end(); // a reconnecting agent replaces its old stream
            this.streams.set(agentId, stream);
            await this.registry.seen(agentId);
            stream.write({ kind: { case: 'welcome', value: { controlPlane: this.info(), serverTime: timestampNow(), desiredBundleVersion: this.current?.version ?? '' } } });
            if (this.current && k.value.appliedBundleVersion !== this.current.version) this.push(stream);
            return;
          }
          if (k.case === 'bundleAck') {
            if (k.value.ok) {
              await this.registry.seen(agentId, k.value.version);
              this.emit('acked', agentId, k.value.version);
            } else {
              this.log.error({ agentId, version: k.value.version, error: k.value.error }, 'agent refused a bundle');
              this.emit('rejected', agentId, k.value.version, k.value.error);
            }
          } else if (k.case === 'heartbeat') await this.registry.seen(agentId);
          else if (k.case === 'approvalRequest') {
            if (!this.approvals) {
              this.log.error({ agentId, requestId: k.value.id }, 'approval requested, but this control plane has no approval service');
              return;
            }
            const decided = await this.approvals.received(agentId, k.value);
            if (decided) stream.write({ kind: { case: 'approvalDecision', value: decided } });
          } else if (k.case === 'approvalWithdraw') await this.approvals?.withdraw(agentId, k.value.requestId, k.value.reason);
          else if (k.case === 'auditBatch' && this.audit && !auditFailed) {
            // Encoded as they arrive, while an earlier batch may still be in the database.
            let records: AuditRecordInput[];
            try {
              records = k.value.events.map((e) => auditRecordOf(agentId!, e));
            } catch (err) {
              // Nothing of this batch is acknowledged: the agent keeps it spooled (and, if it never
              // gets through, eventually refuses new statements rather than run them unrecorded).
              auditFailed = true;
              this.log.error({ agentId, err: (err as Error).message }, 'audit batch refused');
              stream.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
              return;
            }
            waiting.push(...records);
            // One append at a time, in arrival order: an ack "up to n" must never overtake an earlier batch
            // of the same session still being written, or a crash then would lose that batch. Batches that
            // arrive meanwhile are written together in the next transaction (group commit).
            if (waiting.length === records.length) auditQueue = auditQueue.then(() => drainAudit(agentId!));
          }
        })().catch((err: unknown) => this.log.error({ err: (err as Error).message }, 'agent stream error'));
      });
      const gone = (): void => {
        if (agentId && this.streams.get(agentId) === stream) this.streams.delete(agentId);
      };
      stream.on('end', () => {
        gone();
        stream.end();
      });
      stream.on('cancelled', gone);
      stream.on('error', gone);
    },
  };

  /** Resolves when `count` distinct agents have acknowledged `version`. */
  waitForAcks(version: string, count: number, timeoutMs: number): Promise<void> {
    const seen = new Set<string>();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${seen.size}/${count} agents acknowledged ${version}`)), timeoutMs);
      const on = (agent: string, v: string): void => {
        if (v !== version) return;
        seen.add(agent);
        if (seen.size >= count) {
          clearTimeout(timer);
          this.off('acked', on);
          resolve();
        }
      };
      this.on('acked', on);
    });
  }
}

export async function startDistributionServer(opts: { address: string; port: number; tls?: { cert: string; key: string }; distribution: Distribution }): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  addGrpcService(server, AgentService, opts.distribution.service);
  const creds = opts.tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(opts.tls.cert), private_key: Buffer.from(opts.tls.key) }], false) : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${opts.address}:${opts.port}`, creds, (err, p) => (err ? reject(err) : resolve(p))));
  return {
    port,
    // Agent streams never end on their own: give calls a moment, then cut them (agents reconnect elsewhere).
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
