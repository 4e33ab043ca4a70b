/**
 * The agent's Prometheus metrics. Counting happens in one place — a
 * recorder wrapper (`meter`) that sees every session event on its way to the
 * audit log — so the data path pays one counter increment per event and
 * needs no metric code of its own. Gauges that describe state (active
 * sessions, audit lag, config version) are read only when scraped.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SessionEvent, SessionRecorder } from '../audit/events.js';

/** Decisions reported even before they first happen, so dashboards see a 0 rather than a gap. */
export const STATEMENT_DECISIONS = ['allow', 'mask', 'deny', 'held', 'approved', 'unchecked'] as const;

/** Seconds a held statement may wait for a person: buckets from a quick click to the approval timeout. */
export const APPROVAL_WAIT_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600];

/** What the gauges read at scrape time; set once the agent (or the managed agent's spool) exists. */
export interface AgentMetricSources {
  activeSessions?(): number;
  configVersion?(): string | undefined;
  /** Session events recorded but not yet acknowledged by the control plane, and the oldest one's time. */
  auditBacklog?(): { events: number; oldestAt?: string };
}

export class AgentMetrics {
  readonly registry = new Registry();
  private sources: AgentMetricSources = {};
  private readonly sessionsTotal = new Counter({
    name: 'warden_sessions_total',
    help: 'Client sessions by how they ended (refused: the login was refused)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  private readonly statementsTotal = new Counter({
    name: 'warden_statements_total',
    help: 'Statements finished, by policy decision',
    labelNames: ['decision'],
    registers: [this.registry],
  });
  private readonly maskedValuesTotal = new Counter({
    name: 'warden_masked_values_total',
    help: 'Values replaced by their masked form on the wire',
    registers: [this.registry],
  });
  private readonly approvalWait = new Histogram({
    name: 'warden_approval_wait_seconds',
    help: 'Time a held statement waited for its approval decision',
    buckets: APPROVAL_WAIT_BUCKETS,
    registers: [this.registry],
  });
  /** Label children bound once: `inc()` on a child skips hashing the label set per statement. */
  private readonly byDecision = new Map<string, Counter.Internal>();
  private readonly byOutcome = new Map<string, Counter.Internal>();

  constructor() {
    for (const d of STATEMENT_DECISIONS) {
      this.statementsTotal.inc({ decision: d }, 0);
      this.byDecision.set(d, this.statementsTotal.labels(d));
    }
    const metrics = this;
    new Gauge({
      name: 'warden_sessions_active',
      help: 'Client sessions open now',
      registers: [this.registry],
      collect() {
        this.set(metrics.sources.activeSessions?.() ?? 0);
      },
    });
    new Gauge({
      name: 'warden_config_version_info',
      help: 'The policy bundle version (commit) the agent enforces; the value is always 1',
      labelNames: ['version'],
      registers: [this.registry],
      collect() {
        this.reset();
        const v = metrics.sources.configVersion?.();
        if (v) this.set({ version: v }, 1);
      },
    });
    new Gauge({
      name: 'warden_audit_unacknowledged_events',
      help: 'Session events recorded but not yet acknowledged by the control plane (0 when recording to a local file)',
      registers: [this.registry],
      collect() {
        this.set(metrics.sources.auditBacklog?.().events ?? 0);
      },
    });
    new Gauge({
      name: 'warden_audit_lag_seconds',
      help: 'Age of the oldest session event the control plane has not acknowledged yet (0 when none)',
      registers: [this.registry],
      collect() {
        const oldest = metrics.sources.auditBacklog?.().oldestAt;
        this.set(oldest ? Math.max(0, (Date.now() - Date.parse(oldest)) / 1000) : 0);
      },
    });
  }

  /** Wires the scrape-time sources; later calls add to or replace earlier ones. */
  attach(sources: AgentMetricSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  /** For the approvals path: how long a held statement waited for its decision. */
  observeApprovalWait(seconds: number): void {
    this.approvalWait.observe(seconds);
  }

  /** Counts one session event (called by the metered recorder, on the data path). */
  count(event: SessionEvent): void {
    switch (event.type) {
      case 'statement': {
        let child = this.byDecision.get(event.decision);
        if (!child) {
          child = this.statementsTotal.labels(event.decision);
          this.byDecision.set(event.decision, child);
        }
        child.inc();
        if (event.maskedValues) this.maskedValuesTotal.inc(event.maskedValues);
        return;
      }
      case 'session.end':
        this.outcome(event.reason).inc();
        return;
      case 'auth.refused':
        this.outcome('refused').inc();
        return;
      default:
    }
  }

  private outcome(name: string): Counter.Internal {
    let child = this.byOutcome.get(name);
    if (!child) {
      child = this.sessionsTotal.labels(name);
      this.byOutcome.set(name, child);
    }
    return child;
  }
}

/** A recorder that counts every event for `metrics`, then hands it on unchanged. */
export function meter(recorder: SessionRecorder, metrics: AgentMetrics): SessionRecorder {
  return {
    record(event) {
      metrics.count(event);
      recorder.record(event);
    },
    flush: () => recorder.flush(),
    close: () => recorder.close(),
    get healthy() {
      return recorder.healthy;
    },
  };
}
