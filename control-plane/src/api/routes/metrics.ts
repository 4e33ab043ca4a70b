/**
 * Prometheus metrics: the configuration version in force, rejected commits,
 * connected agents, how long approvals take. Scraped at /metrics (text
 * exposition format). The agents' data-path metrics are their own (agent/src/ops/metrics.ts).
 */
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { APPROVAL_WAIT_BUCKETS } from '../../../../agent/src/ops/metrics.js';

export interface MetricsSources {
  currentVersion(): string | undefined;
  connectedAgents(): number;
}

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly configRejected = new Counter({ name: 'warden_config_rejected_total', help: 'Config commits refused by validation', registers: [this.registry] });
  readonly configApplied = new Counter({ name: 'warden_config_applied_total', help: 'Config commits compiled into a bundle', registers: [this.registry] });
  private readonly approvalWait = new Histogram({
    name: 'warden_approval_wait_seconds',
    help: 'Time from an approval request to its decision',
    buckets: APPROVAL_WAIT_BUCKETS,
    registers: [this.registry],
  });

  /** For the approvals lifecycle: seconds from request to approve/deny/expiry. */
  observeApprovalWait(seconds: number): void {
    this.approvalWait.observe(seconds);
  }

  constructor(sources: MetricsSources) {
    // Process metrics (CPU, resident memory, heap, event-loop delay), read at scrape time.
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'warden_config_version_info',
      help: 'The configuration version (commit) being distributed; the value is always 1',
      labelNames: ['version'],
      registers: [this.registry],
      collect() {
        this.reset();
        const v = sources.currentVersion();
        if (v) this.set({ version: v }, 1);
      },
    });
    new Gauge({
      name: 'warden_agents_connected',
      help: 'Agents with an open Connect stream',
      registers: [this.registry],
      collect() {
        this.set(sources.connectedAgents());
      },
    });
  }
}

export default async function metricsRoutes(app: FastifyInstance, opts: { metrics: ControlPlaneMetrics }): Promise<void> {
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    reply.header('content-type', opts.metrics.registry.contentType);
    return opts.metrics.registry.metrics();
  });
}
