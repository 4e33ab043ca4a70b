/**
 * An agent managed by the control plane: enroll once, then run whatever
 * signed bundle the control plane sends. Restart policy: with a valid signed
 * bundle cached on disk the agent serves it at once (and keeps serving it
 * while the control plane is unreachable); with none it opens no listener,
 * so clients are refused, until the first bundle arrives.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { PolicyBundle } from '../../../proto/src/index.js';
import { startAgentFromBundle, type RunningAgent } from '../agent.js';
import { AgentIdentity } from './agent-identity.js';
import { loadBundle, verifyBundle } from './bundle-cache.js';
import { ControlLink, enroll } from './control-link.js';
import path from 'node:path';
import { DurableSpool } from '../audit/durable-spool.js';
import { ApprovalBroker } from '../approval/broker.js';
import type { AgentMetrics } from '../ops/metrics.js';
import type { ResultRecording } from '../audit/events.js';

export interface ManagedAgentOptions {
  address: string;
  credentials: grpc.ChannelCredentials;
  stateDir: string;
  log: Logger;
  /** Needed only for the first start: an enrollment token and the name/labels to enroll with. */
  enrollment?: { token: string; name: string; labels?: Record<string, string> };
  recordingPath: string;
  /** What session records keep of results (default: 20 sample rows and the stream's hash). */
  results?: ResultRecording;
  backoff?: { initialMs: number; maxMs: number };
  /** On stop, how long to wait for the control plane to acknowledge the last events. Default 5000. */
  ackWaitMs?: number;
  metrics?: AgentMetrics;
}

export interface ManagedAgent {
  readonly agent: RunningAgent | null;
  readonly link: ControlLink;
  readonly agentId: string;
  /** The durable audit spool (events waiting for the control plane's acknowledgement). */
  readonly spool: DurableSpool;
  /** Approval requests of held statements. */
  readonly approvals: ApprovalBroker;
  /** Resolves once a bundle (cached or received) is being enforced. */
  ready: Promise<void>;
  /**
   * Ends sessions gracefully (see RunningAgent.stop), then gives the control plane up to
   * `ackWaitMs` to acknowledge the spool before closing the link; whatever is still
   * unacknowledged stays in the fsync'd spool and is replayed on the next start.
   */
  stop(graceMs?: number): Promise<void>;
}

export async function startManagedAgent(opts: ManagedAgentOptions): Promise<ManagedAgent> {
  let identity = AgentIdentity.open(opts.stateDir);
  if (!identity.info) {
    if (!opts.enrollment) throw new Error(`agent in ${opts.stateDir} is not enrolled: give an enrollment token`);
    identity = await enroll(opts.address, opts.credentials, identity, opts.enrollment);
    opts.log.info({ agentId: identity.info!.agentId }, 'enrolled');
  }
  const info = identity.info!;
  let agent: RunningAgent | null = null;
  // Every session event is fsync'd here before it counts as recorded, until the control plane acknowledges it.
  const spool = new DurableSpool({ dir: path.join(opts.stateDir, 'spool'), bundleVersion: () => agent?.version });
  opts.metrics?.attach({ auditBacklog: () => spool.backlog() });
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));

  // Held statements wait here for signed decisions that arrive over the link.
  let link: ControlLink | undefined;
  const approvals = new ApprovalBroker({ agentId: info.agentId, managed: true, keys: () => link?.trustedApprovalKeys() ?? info.bundleKeys });
  const apply = async (bundle: PolicyBundle): Promise<void> => {
    if (!agent) {
      agent = await startAgentFromBundle({ id: info.agentId, labels: info.labels, recordingPath: opts.recordingPath, ...(opts.results ? { results: opts.results } : {}) }, bundle, {
        baseDir: opts.stateDir,
        logger: opts.log,
        recorder: spool,
        approvals,
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
      });
      markReady();
    } else await agent.applyBundle(bundle);
  };

  const cached = loadBundle(opts.stateDir);
  if (cached) {
    try {
      await apply(verifyBundle(cached, info.bundleKeys));
      opts.log.info({ version: cached.version }, 'serving the cached signed bundle until the control plane answers');
    } catch (err) {
      opts.log.error({ err: (err as Error).message }, 'cached bundle refused; waiting for the control plane');
    }
  }

  link = new ControlLink({
    address: opts.address,
    credentials: opts.credentials,
    identity,
    stateDir: opts.stateDir,
    log: opts.log,
    appliedVersion: () => agent?.version,
    apply,
    activeSessions: () => agent?.engines.reduce((n, e) => n + e.activeSessions, 0) ?? 0,
    spool,
    approvals,
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
  });
  link.start();
  const started = link;

  return {
    get agent() {
      return agent;
    },
    link: started,
    approvals,
    spool,
    agentId: info.agentId,
    ready,
    async stop(graceMs = 0) {
      await agent?.stop(graceMs);
      if (started.connected && !(await spool.acknowledged(opts.ackWaitMs ?? 5000))) {
        opts.log.warn({ unacknowledged: spool.backlog().events }, 'stopping with session events not yet acknowledged; they stay spooled for the next start');
      }
      started.stop();
      await spool.close();
    },
  };
}
