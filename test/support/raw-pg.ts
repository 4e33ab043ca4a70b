/**
 * A bare PostgreSQL protocol client for tests that must control the exact
 * bytes on the wire (pipelining, malformed frames, slow readers). Frontend
 * messages come from pg-protocol's serializer, replies from its parser.
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';

export type Msg = BackendMessage & Record<string, unknown>;

export class RawPg {
  readonly messages: Msg[] = [];
  private readonly parser = new Parser();
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.parser.parse(chunk, (m) => this.messages.push(m as Msg));
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  static connect(port: number): Promise<RawPg> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawPg(s)));
      s.once('error', reject);
    });
  }

  /** Connects and logs in with a token; resolves after the first ReadyForQuery. */
  static async login(port: number, token: string, database = 'clinical'): Promise<RawPg> {
    const c = await RawPg.connect(port);
    c.send(serialize.startup({ user: 'ai-agent', database }));
    await c.waitFor((m) => m.name === 'authenticationCleartextPassword' || m.name === 'error');
    c.send(serialize.password(token));
    const last = await c.waitFor((m) => m.name === 'readyForQuery' || m.name === 'error');
    if (last.name === 'error') throw new Error(`login failed: ${String(last.message)}`);
    return c;
  }

  send(buf: Buffer | string): void {
    this.socket.write(buf);
  }

  /** Waits for the first not-yet-consumed message matching `pred`; returns it. */
  async waitFor(pred: (m: Msg) => boolean, timeoutMs = 10_000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex(pred);
      if (i >= 0) return this.messages.splice(0, i + 1)[i]!;
      if (this.closed) throw new Error(`connection closed; got ${this.messages.map((m) => m.name).join(',')}`);
      if (Date.now() > deadline) throw new Error(`timed out; got ${this.messages.map((m) => m.name).join(',')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** Collects messages up to and including the next ReadyForQuery. */
  async untilReady(timeoutMs = 10_000): Promise<Msg[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => m.name === 'readyForQuery');
      if (i >= 0) return this.messages.splice(0, i + 1);
      if (this.closed) throw new Error(`connection closed; got ${this.messages.map((m) => m.name).join(',')}`);
      if (Date.now() > deadline) throw new Error('timed out waiting for ReadyForQuery');
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  end(): void {
    this.socket.destroy();
  }
}

export { serialize };
