/**
 * Reads the few messages of the login phase (startup packets, then typed
 * messages such as PasswordMessage) from a socket, with size limits and a
 * deadline. Once login is over, `detach` hands back any bytes the client
 * already pipelined so the relay sees them first.
 */
import type net from 'node:net';
import { StartupReader, StartupError } from './startup.js';

export class HandshakeError extends Error {
  constructor(
    message: string,
    readonly sqlState = '08P01',
  ) {
    super(message);
  }
}

export class HandshakeReader {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private closed: Error | null = null;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.closed = new HandshakeError('client closed the connection during login', '08006');
    this.wake();
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private async more(): Promise<void> {
    if (this.closed) throw this.closed;
    await new Promise<void>((resolve) => (this.waiter = resolve));
    if (this.closed && this.buffered.length === 0) throw this.closed;
  }

  /** Bytes received but not yet consumed. */
  get pendingBytes(): number {
    return this.buffered.length;
  }

  /** One untyped startup-phase packet (length-prefixed). */
  async startupPacket(): Promise<Buffer> {
    const reader = new StartupReader();
    for (;;) {
      if (this.buffered.length > 0) {
        const chunk = this.buffered;
        this.buffered = Buffer.alloc(0);
        let got;
        try {
          got = reader.push(chunk);
        } catch (err) {
          throw new HandshakeError((err as StartupError).message);
        }
        if (got) {
          this.buffered = got.rest;
          return got.packet;
        }
      }
      await this.more();
    }
  }

  /** One typed message; its type must be `expected` and its length at most maxBytes. */
  async typedMessage(expected: number, maxBytes: number): Promise<Buffer> {
    for (;;) {
      if (this.buffered.length >= 5) {
        const type = this.buffered[0]!;
        const length = this.buffered.readInt32BE(1);
        if (type !== expected) {
          throw new HandshakeError(`expected message '${String.fromCharCode(expected)}' during login, got 0x${type.toString(16)}`);
        }
        if (length < 4 || length + 1 > maxBytes) throw new HandshakeError(`invalid login message length ${length}`);
        if (this.buffered.length >= length + 1) {
          const msg = this.buffered.subarray(0, length + 1);
          this.buffered = this.buffered.subarray(length + 1);
          return msg;
        }
      }
      await this.more();
    }
  }

  /** Stops reading; returns what the client sent beyond the login messages. */
  detach(): Buffer {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }
}
