/**
 * The agent's Prometheus metrics. Counting happens in one place — a
 * recorder wrapper (`meter`) that sees every session event on its way to the
 * audit log — so the data path needs no metric code of its own. The data
 * path only bumps plain numbers (a prom-client `inc` hashes its labels on
 * every call, ~100 ns); the counters publish them when scraped, as do the
 * gauges that describe state (active sessions, audit lag, config version).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SessionEvent, SessionRecorder, StatementRecord } from '../audit/events.js';

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
  /** Counts since start, by label value; published at scrape time. */
  private readonly outcomes = new Map<string, number>();
  private readonly decisions = new Map<string, number>(STATEMENT_DECISIONS.map((d) => [d, 0]));
  private maskedValues = 0;
  private readonly approvalWait = new Histogram({
    name: 'warden_approval_wait_seconds',
    help: 'Time a held statement waited for its approval decision',
    buckets: APPROVAL_WAIT_BUCKETS,
    registers: [this.registry],
  });
  constructor() {
    const metrics = this;
    // Process metrics (CPU, resident memory, heap, event-loop delay), read at scrape time.
    collectDefaultMetrics({ register: this.registry });
    const publish = (counter: Counter<string>, label: string, counts: Map<string, number>): void => {
      counter.reset();
      for (const [value, n] of counts) counter.inc({ [label]: value }, n);
    };
    new Counter({
      name: 'warden_sessions_total',
      help: 'Client sessions by how they ended (refused: the login was refused)',
      labelNames: ['outcome'],
      registers: [this.registry],
      collect() {
        publish(this, 'outcome', metrics.outcomes);
      },
    });
    new Counter({
      name: 'warden_statements_total',
      help: 'Statements finished, by policy decision',
      labelNames: ['decision'],
      registers: [this.registry],
      collect() {
        publish(this, 'decision', metrics.decisions);
      },
    });
    new Counter({
      name: 'warden_masked_values_total',
      help: 'Values replaced by their masked form on the wire',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(metrics.maskedValues);
      },
    });
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

  /** Counts one statement by its decision, and the values it masked. */
  countStatement(decision: StatementRecord['decision'], maskedValues: number): void {
    this.decisions.set(decision, (this.decisions.get(decision) ?? 0) + 1);
    this.maskedValues += maskedValues;
  }

  /** Counts one session event (called by the metered recorder, on the data path). */
  count(event: SessionEvent): void {
    switch (event.type) {
      case 'statement':
        this.countStatement(event.decision, event.maskedValues ?? 0);
        return;
      case 'session.end':
        this.outcomes.set(event.reason, (this.outcomes.get(event.reason) ?? 0) + 1);
        return;
      case 'auth.refused':
        this.outcomes.set('refused', (this.outcomes.get('refused') ?? 0) + 1);
        return;
      default:
    }
  }
}

/** A recorder that counts every event for `metrics`, then hands it on unchanged. */
export function meter(recorder: SessionRecorder, metrics: AgentMetrics): SessionRecorder {
  const lines = recorder.recordStatementLine?.bind(recorder);
  return {
    record(event) {
      metrics.count(event);
      recorder.record(event);
    },
    ...(lines && {
      recordStatementLine(line: Buffer, decision: StatementRecord['decision']) {
        metrics.countStatement(decision, 0);
        lines(line, decision);
      },
    }),
    flush: () => recorder.flush(),
    close: () => recorder.close(),
    get healthy() {
      return recorder.healthy;
    },
  };
}
