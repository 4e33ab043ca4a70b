/**
 * The control plane's audit housekeeping: it signs a checkpoint whenever the
 * log has grown since the last one (every `intervalMs`), which is what seals
 * records for export, and once a day prunes what retention allows (only
 * exported segments older than the retention; see retention.ts).
 */
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditChain } from './hash-chain.js';
import type { AuditRetention } from './retention.js';

export interface CheckpointerOptions {
  chain: AuditChain;
  privateKey: KeyObject;
  intervalMs: number;
  log: Logger;
  retention?: { store: AuditRetention; ms: number; everyMs?: number };
}

export class Checkpointer {
  private timer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: CheckpointerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.serial(() => this.tick()), this.opts.intervalMs);
    this.timer.unref();
    const r = this.opts.retention;
    if (r) {
      void this.serial(() => this.prune());
      this.pruneTimer = setInterval(() => void this.serial(() => this.prune()), r.everyMs ?? 86_400_000);
      this.pruneTimer.unref();
    }
  }

  private serial(fn: () => Promise<unknown>): Promise<unknown> {
    this.running = this.running.then(fn).catch((err: unknown) => this.opts.log.error({ err: (err as Error).message }, 'audit housekeeping failed'));
    return this.running;
  }

  /** Signs the head if records arrived since the last checkpoint; returns the size signed. */
  async tick(): Promise<number | undefined> {
    const { chain } = this.opts;
    const [head, last] = await Promise.all([chain.head(), chain.lastCheckpointSize()]);
    if (head.size <= last) return undefined;
    const cp = await chain.checkpoint(this.opts.privateKey);
    this.opts.log.debug({ size: cp.size, id: cp.id }, 'audit checkpoint signed');
    return cp.size;
  }

  private async prune(): Promise<void> {
    const r = this.opts.retention!;
    const result = await r.store.prune(r.ms);
    if (result.pruned > 0) this.opts.log.info({ pruned: result.pruned, anchor: result.anchor }, 'audit records past retention pruned (all exported)');
  }

  /** Stops the timers and signs a last checkpoint so a clean shutdown leaves everything sealable. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.pruneTimer);
    await this.serial(() => this.tick());
  }
}
