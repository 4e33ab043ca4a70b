/**
 * A running agent: one engine per listener of the bundle in force, sharing
 * the cancel registry, the recorder and the catalog connections. Bundles
 * come from the single-file config (startAgent) or, later, from the control
 * plane (startAgentFromBundle + applyBundle). Used by main.ts, tests and
 * benchmarks alike.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from './config/types.js';
import type { Listener, PolicyBundle } from '../../proto/src/index.js';
import { JsonlRecorder } from './audit/jsonl-recorder.js';
import { DEFAULT_RESULT_RECORDING, type ResultRecording, type SessionRecorder } from './audit/events.js';
import { CancelRegistry } from './engines/postgres/cancel.js';
import { PostgresEngine } from './engines/postgres/listener.js';
import type { ProtocolEngine } from './engines/engine.js';
import { HttpEngine } from './engines/http/listener.js';
import { SshEngine } from './engines/ssh/listener.js';
import { createLogger } from './log.js';
import { bundleFromConfig } from './config/to-bundle.js';
import { CatalogPool } from './policy/catalog-connection.js';
import { BundleState } from './bundle-state.js';
import { ApprovalBroker } from './approval/broker.js';
import { meter, type AgentMetrics } from './ops/metrics.js';
import type { UpstreamTarget } from './engines/postgres/upstream-connect.js';
import { loadNativeBinding, NativeRelayLoop } from './engines/postgres/native-relay.js';

export interface RunningAgent {
  engines: ProtocolEngine[];
  /** Bound address per listener name. */
  addresses: Map<string, { address: string; port: number }>;
  recorder: SessionRecorder;
  /** Version of the bundle in force. */
  readonly version: string;
  /**
   * Validates a new bundle and swaps it in atomically; sessions in flight keep the bundle they
   * started with. Listeners that changed are restarted. Throws (and keeps the old bundle) if invalid.
   */
  applyBundle(bundle: PolicyBundle): Promise<void>;
  /** The upstreams the running listeners forward to (readiness probes them). */
  upstreams(): UpstreamTarget[];
  /** True from the moment stop() is called. */
  readonly stopping: boolean;
  /** Sessions the native relay has carried (relay-only enforcement, plaintext). */
  readonly nativeSessions: number;
  /** Their statements: written as JSON lines by the relay, and decoded from its records in JavaScript. */
  readonly nativeStatements: { lines: number; records: number };
  /**
   * Stops accepting, lets statements in flight finish for up to `graceMs`, ends the remaining
   * sessions with 57P01 (each recorded with reason agent_shutdown), and flushes the recorder.
   * A recorder given in the options is flushed but left open: its owner closes it.
   */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** Folder that relative paths in the config are taken from. */
  baseDir?: string;
  /** Name of the config file, for error messages. */
  configFile?: string;
  logger?: Logger;
  recorder?: SessionRecorder;
  /** Where held statements ask for approval; without one (single-file mode) they are refused. */
  approvals?: ApprovalBroker;
  observeApprovalWait?: (seconds: number, outcome: 'approved' | 'refused') => void;
  /** Counts sessions, statements and masked values, and reads the agent's state when scraped. */
  metrics?: AgentMetrics;
  /** Relay-only sessions go through the native relay when it is built; false keeps them in JavaScript (default: WARDEN_NATIVE_RELAY, else true). */
  nativeRelay?: boolean;
}

export interface AgentIdentity {
  id: string;
  /** Enrollment labels: listeners with an agent selector run only where it matches. */
  labels?: Record<string, string>;
  recordingPath: string;
  relayOnly?: boolean;
  /** What session records keep of results; default: 20 sample rows and the hash of the stream. */
  results?: ResultRecording;
}

/** Single-file mode: the config is compiled into a bundle by the control plane's own compiler. */
export function startAgent(config: AgentConfig, options: StartOptions = {}): Promise<RunningAgent> {
  const bundle = bundleFromConfig(config, options.configFile ?? 'agent config');
  return startAgentFromBundle(
    {
      id: config.agent.id,
      recordingPath: config.recording.path,
      relayOnly: config.enforcement === 'relay-only',
      results: { ...DEFAULT_RESULT_RECORDING, ...(config.recording.sampleRows !== undefined ? { sampleRows: config.recording.sampleRows } : {}) },
    },
    bundle,
    options,
  );
}

/** What makes a listener's socket: a change here needs a restart, anything else is a swap. */
function socketKey(l: Listener): string {
  return JSON.stringify([l.address, l.port, l.target, l.protocol.case, l.protocol.value]);
}

export async function startAgentFromBundle(identity: AgentIdentity, bundle: PolicyBundle, options: StartOptions = {}): Promise<RunningAgent> {
  const baseDir = options.baseDir ?? process.cwd();
  const log = options.logger ?? createLogger();
  const ownRecorder = options.recorder ? null : new JsonlRecorder(path.resolve(baseDir, identity.recordingPath));
  const sink = options.metrics ? meter(options.recorder ?? ownRecorder!, options.metrics) : (options.recorder ?? ownRecorder!);
  // Statements the native relay carried reach the recorder in batches: a flush waits for those first.
  const lines = sink.recordStatementLine?.bind(sink);
  const recorder: SessionRecorder = {
    record: (event) => sink.record(event),
    ...(lines && { recordStatementLine: lines }),
    get healthy() {
      return sink.healthy;
    },
    flush: async () => {
      await nativeLoop?.flush();
      await sink.flush();
    },
    close: () => sink.close(),
  };
  let stopping = false;
  // Relay-only sessions are carried by the native relay when it was built (see StartOptions.nativeRelay).
  let nativeLoop: NativeRelayLoop | undefined;
  let nativeLooked = false;
  const nativeRelay = (): NativeRelayLoop | undefined => {
    if (nativeLooked) return nativeLoop;
    nativeLooked = true;
    if (!(options.nativeRelay ?? process.env.WARDEN_NATIVE_RELAY !== '0')) return undefined;
    const binding = loadNativeBinding();
    if (!binding) {
      log.warn('the native relay is not built (agent/native): relay-only sessions run in JavaScript');
      return undefined;
    }
    nativeLoop = new NativeRelayLoop(binding, () => recorder.healthy);
    return nativeLoop;
  };
  const cancels = new CancelRegistry();
  const approvals = options.approvals ?? new ApprovalBroker({ agentId: identity.id, keys: () => ({}), managed: false });
  const catalogs = new CatalogPool(log);
  const makeState = (b: PolicyBundle): BundleState =>
    new BundleState(b, { baseDir, labels: identity.labels ?? {}, relayOnly: identity.relayOnly ?? false, catalogs, log });

  let current = makeState(bundle);
  if (current.relayOnly) log.warn('enforcement is relay-only: statements are relayed without inspection or masking');

  const engines = new Map<string, { engine: ProtocolEngine; key: string }>();
  const addresses = new Map<string, { address: string; port: number }>();

  /** How long held work waited for its decision, for every engine (tests' observer, else the metrics). */
  const observeApprovalWait =
    options.observeApprovalWait ?? (options.metrics ? (seconds: number, _outcome: 'approved' | 'refused') => options.metrics!.observeApprovalWait(seconds) : undefined);

  const readTls = (t: { certFile: string; keyFile: string } | undefined): { tls?: { cert: string; key: string } } =>
    t?.certFile
      ? { tls: { cert: fs.readFileSync(path.resolve(baseDir, t.certFile), 'utf8'), key: fs.readFileSync(path.resolve(baseDir, t.keyFile), 'utf8') } }
      : {};

  const makeHttpEngine = (l: Listener & { protocol: { case: 'http' } }): HttpEngine => {
    const h = l.protocol.value;
    const elog = log.child({ listener: l.name });
    return new HttpEngine({
      name: l.name,
      address: l.address,
      port: l.port,
      allowPlaintext: h.allowPlaintext,
      ...readTls(h.tls),
      log: elog,
      session: () => {
        const state = current;
        const target = state.httpTargets.get(l.target);
        if (!target) throw new Error(`listener ${l.name}: HTTP target ${l.target} is not in bundle ${state.version}`);
        return {
          agentId: identity.id,
          listener: l.name,
          auth: { verifier: state.verifier, groupMappings: (issuer: string) => state.mappingsFor(issuer), roles: state.roles, target: target.name },
          target,
          policy: state.httpPolicy,
          approvals: { broker: approvals, rules: state.protocolApprovalsFor(target.name), ...(observeApprovalWait ? { waited: observeApprovalWait } : {}) },
          recorder,
          log: elog,
          bundleVersion: state.version,
          maxRequestBytes: h.maxRequestBytes || 10 * 1024 * 1024,
        };
      },
    });
  };

  const makeSshEngine = (l: Listener & { protocol: { case: 'ssh' } }): SshEngine => {
    const elog = log.child({ listener: l.name });
    return new SshEngine({
      name: l.name,
      address: l.address,
      port: l.port,
      hostKey: fs.readFileSync(path.resolve(baseDir, l.protocol.value.hostKeyFile), 'utf8'),
      log: elog,
      session: () => {
        const state = current;
        const target = state.sshTargets.get(l.target);
        if (!target) throw new Error(`listener ${l.name}: SSH target ${l.target} is not in bundle ${state.version}`);
        return {
          agentId: identity.id,
          listener: l.name,
          auth: { verifier: state.verifier, groupMappings: (issuer: string) => state.mappingsFor(issuer), roles: state.roles, target: target.name },
          target,
          policy: state.sshPolicy,
          approvals: { broker: approvals, rules: state.protocolApprovalsFor(target.name), ...(observeApprovalWait ? { waited: observeApprovalWait } : {}) },
          recorder,
          log: elog,
          bundleVersion: state.version,
        };
      },
    });
  };

  const makeEngine = (l: Listener): ProtocolEngine => {
    if (l.protocol.case === 'http') return makeHttpEngine(l as Listener & { protocol: { case: 'http' } });
    if (l.protocol.case === 'ssh') return makeSshEngine(l as Listener & { protocol: { case: 'ssh' } });
    if (l.protocol.case !== 'postgres') throw new Error(`listener ${l.name}: protocol ${l.protocol.case ?? 'unset'} is not supported by this agent`);
    const pg = l.protocol.value;
    const elog = log.child({ listener: l.name });
    return new PostgresEngine({
      name: l.name,
      address: l.address,
      port: l.port,
      allowPlaintext: pg?.allowPlaintext ?? false,
      ...(pg?.tls?.certFile
        ? {
            tls: {
              cert: fs.readFileSync(path.resolve(baseDir, pg.tls.certFile), 'utf8'),
              key: fs.readFileSync(path.resolve(baseDir, pg.tls.keyFile), 'utf8'),
            },
          }
        : {}),
      loginTimeoutMs: 30_000,
      log: elog,
      cancels,
      session: () => {
        // Captured once per connection: the whole session runs under this bundle.
        const state = current;
        const target = state.targets.get(l.target);
        if (!target) throw new Error(`listener ${l.name}: target ${l.target} is not in bundle ${state.version}`);
        return {
          agentId: identity.id,
          listener: l.name,
          auth: { verifier: state.verifier, groupMappings: (issuer: string) => state.mappingsFor(issuer), roles: state.roles, target: target.name },
          target,
          recorder,
          results: identity.results ?? DEFAULT_RESULT_RECORDING,
          cancels,
          log: elog,
          maxMessageBytes: pg?.maxMessageBytes || 64 * 1024 * 1024,
          bundleVersion: () => state.version,
          approvals,
          ...(observeApprovalWait ? { observeApprovalWait } : {}),
          ...(state.relayOnly
            ? { nativeRelay: nativeRelay() }
            : {
                preparePolicy: (role: string) => state.policyFor(target, role),
                onDdl: () => state.refreshCatalog(target.name),
              }),
        };
      },
    });
  };

  const reconcile = async (): Promise<void> => {
    const wanted = new Map(current.listeners.map((l) => [l.name, l]));
    for (const [name, { engine, key }] of [...engines]) {
      const l = wanted.get(name);
      if (!l || socketKey(l) !== key) {
        await engine.stop();
        engines.delete(name);
        addresses.delete(name);
      }
    }
    for (const l of wanted.values()) {
      if (engines.has(l.name)) continue;
      const engine = makeEngine(l);
      addresses.set(l.name, await engine.start());
      engines.set(l.name, { engine, key: socketKey(l) });
    }
  };

  try {
    await reconcile();
  } catch (err) {
    await Promise.all([...engines.values()].map((e) => e.engine.stop()));
    await catalogs.close();
    throw err;
  }
  log.info({ version: current.version, listeners: Object.fromEntries(addresses) }, 'agent started');
  options.metrics?.attach({
    activeSessions: () => [...engines.values()].reduce((n, e) => n + e.engine.activeSessions, 0),
    configVersion: () => current.version,
  });

  return {
    get engines() {
      return [...engines.values()].map((e) => e.engine);
    },
    addresses,
    recorder,
    get version() {
      return current.version;
    },
    async applyBundle(next: PolicyBundle) {
      // A bundle arriving while sessions drain must not open listeners again.
      if (stopping) throw new Error('the agent is shutting down; the bundle is applied by the next start');
      const state = makeState(next);
      const previous = current.version;
      current = state;
      await reconcile();
      log.info({ version: state.version, previous }, 'bundle applied');
    },
    upstreams() {
      const names = new Set(current.listeners.map((l) => l.target));
      return [...current.targets.values()].filter((t) => names.has(t.name));
    },
    get stopping() {
      return stopping;
    },
    get nativeSessions() {
      return nativeLoop?.started ?? 0;
    },
    get nativeStatements() {
      return { ...(nativeLoop?.statements ?? { lines: 0, records: 0 }) };
    },
    async stop(graceMs = 0) {
      stopping = true;
      // Held statements are refused first, so their sessions can end within the grace period.
      approvals.close('the agent is shutting down');
      await Promise.all([...engines.values()].map((e) => e.engine.stop(graceMs)));
      await nativeLoop?.stop();
      await catalogs.close();
      await recorder.flush().catch((err: unknown) => log.error({ err: (err as Error).message }, 'session records could not be flushed'));
      await ownRecorder?.close();
    },
  };
}
