/**
 * Prometheus metrics: the configuration version in force, rejected commits,
 * connected agents. Scraped at /metrics (text exposition format).
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Registry } from 'prom-client';

export interface MetricsSources {
  currentVersion(): string | undefined;
  connectedAgents(): number;
}

export class ControlPlaneMetrics {
  readonly registry = new Registry();
  readonly configRejected = new Counter({ name: 'warden_config_rejected_total', help: 'Config commits refused by validation', registers: [this.registry] });
  readonly configApplied = new Counter({ name: 'warden_config_applied_total', help: 'Config commits compiled into a bundle', registers: [this.registry] });

  constructor(sources: MetricsSources) {
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
