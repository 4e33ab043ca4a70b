/**
 * How control-plane replicas tell each other that an approval request was
 * decided: Redis pub/sub when replicas share a Redis, an in-process emitter
 * for a single control plane. The message carries only the request id; the
 * decision itself is read from the shared database, so a forged or
 * replayed bus message cannot release anything (the agent also checks the
 * signature).
 */
import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';

export interface ApprovalBus {
  /** A new request was stored (every replica learns of it: approver-facing views, metrics). */
  publishCreated(id: string): Promise<void>;
  onCreated(listener: (id: string) => void): void;
  publishDecided(id: string): Promise<void>;
  onDecided(listener: (id: string) => void): void;
  /** Remembers a key for `ttlSeconds`; false if it was already there (replay protection shared by replicas). */
  firstSeen(key: string, ttlSeconds: number): Promise<boolean>;
  close(): Promise<void>;
}

export class LocalApprovalBus implements ApprovalBus {
  private readonly events = new EventEmitter<{ decided: [string]; created: [string] }>();

  async publishCreated(id: string): Promise<void> {
    this.events.emit('created', id);
  }

  onCreated(listener: (id: string) => void): void {
    this.events.on('created', listener);
  }

  async publishDecided(id: string): Promise<void> {
    this.events.emit('decided', id);
  }

  onDecided(listener: (id: string) => void): void {
    this.events.on('decided', listener);
  }

  private readonly seen = new Map<string, number>();

  async firstSeen(key: string, ttlSeconds: number): Promise<boolean> {
    const now = Date.now();
    for (const [k, until] of this.seen) if (until <= now) this.seen.delete(k);
    if (this.seen.has(key)) return false;
    this.seen.set(key, now + ttlSeconds * 1000);
    return true;
  }

  async close(): Promise<void> {
    this.events.removeAllListeners();
  }
}

export class RedisApprovalBus implements ApprovalBus {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly listeners: Array<(id: string) => void> = [];
  private readonly createdListeners: Array<(id: string) => void> = [];
  private readonly channel: string;
  private readonly createdChannel: string;

  private constructor(url: string, namespace: string) {
    this.channel = `warden:${namespace}:approvals:decided`;
    this.createdChannel = `warden:${namespace}:approvals:created`;
    // A subscribed connection can do nothing else, hence two.
    this.pub = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 3 });
    this.sub = new Redis(url, { lazyConnect: true });
    this.sub.on('message', (channel: string, id: string) => {
      if (channel === this.channel) for (const l of this.listeners) l(id);
      else if (channel === this.createdChannel) for (const l of this.createdListeners) l(id);
    });
  }

  /** Connects and subscribes; rejects when Redis cannot be reached (the control plane then does not start). */
  static async connect(url: string, namespace: string): Promise<RedisApprovalBus> {
    const bus = new RedisApprovalBus(url, namespace);
    await bus.pub.connect();
    await bus.sub.connect();
    await bus.sub.subscribe(bus.channel, bus.createdChannel);
    return bus;
  }

  async publishDecided(id: string): Promise<void> {
    await this.pub.publish(this.channel, id);
  }

  async publishCreated(id: string): Promise<void> {
    await this.pub.publish(this.createdChannel, id);
  }

  onCreated(listener: (id: string) => void): void {
    this.createdListeners.push(listener);
  }

  onDecided(listener: (id: string) => void): void {
    this.listeners.push(listener);
  }

  async firstSeen(key: string, ttlSeconds: number): Promise<boolean> {
    return (await this.pub.set(`${this.channel}:seen:${key}`, '1', 'EX', ttlSeconds, 'NX')) === 'OK';
  }

  async close(): Promise<void> {
    this.sub.disconnect();
    this.pub.disconnect();
  }
}
