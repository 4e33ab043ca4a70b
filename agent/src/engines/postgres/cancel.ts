/**
 * CancelRequest handling. Clients get the agent's own BackendKeyData; the
 * upstream's key never leaves the agent. A cancel from a client is looked
 * up here and re-sent, on a fresh connection, with the upstream key.
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomInt, timingSafeEqual } from 'node:crypto';
import { serialize } from 'pg-protocol';
import type { UpstreamTarget } from './upstream-connect.js';

interface CancelEntry {
  secretKey: number;
  target: UpstreamTarget;
  upstreamProcessId: number;
  upstreamSecretKey: number;
  /** Handles the cancel inside the agent (a statement held for approval); true when it did. */
  local?: () => boolean;
}

export class CancelRegistry {
  private readonly entries = new Map<number, CancelEntry>();

  /** Allocates a unique agent-side key for a session. */
  register(target: UpstreamTarget, upstreamProcessId: number, upstreamSecretKey: number, local?: () => boolean): { processId: number; secretKey: number } {
    let processId: number;
    do processId = randomInt(1, 0x7fffffff);
    while (this.entries.has(processId));
    const secretKey = randomInt(-0x80000000, 0x7fffffff);
    this.entries.set(processId, { secretKey, target, upstreamProcessId, upstreamSecretKey, ...(local ? { local } : {}) });
    return { processId, secretKey };
  }

  unregister(processId: number): void {
    this.entries.delete(processId);
  }

  /**
   * Forwards a client's cancel if the key matches. Like PostgreSQL, a wrong
   * key is silently ignored: the requester learns nothing either way.
   */
  async cancel(processId: number, secretKey: number): Promise<boolean> {
    const entry = this.entries.get(processId);
    if (!entry) return false;
    const a = Buffer.alloc(4);
    const b = Buffer.alloc(4);
    a.writeInt32BE(entry.secretKey);
    b.writeInt32BE(secretKey);
    if (!timingSafeEqual(a, b)) return false;
    if (entry.local?.()) return true;
    await sendCancel(entry.target, entry.upstreamProcessId, entry.upstreamSecretKey);
    return true;
  }
}

function sendCancel(target: UpstreamTarget, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port });
    const done = (): void => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(target.connectTimeoutMs, done);
    socket.once('error', done);
    socket.once('connect', () => {
      if (target.tls.mode === 'disable') {
        socket.end(serialize.cancel(processId, secretKey));
        socket.once('close', done);
        return;
      }
      socket.write(serialize.requestSsl());
      socket.once('data', (d: Buffer) => {
        if (d[0] !== 0x53) return done();
        const secure = tls.connect({
          socket,
          ca: target.tls.ca,
          rejectUnauthorized: target.tls.mode === 'verify-full',
          servername: target.tls.serverName ?? (net.isIP(target.host) ? undefined : target.host),
        });
        secure.once('secureConnect', () => secure.end(serialize.cancel(processId, secretKey)));
        secure.once('close', done);
        secure.once('error', done);
      });
    });
  });
}
