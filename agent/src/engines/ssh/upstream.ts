/**
 * Forward for SSH: the agent's own connection to the target host, made with
 * the agent's key (an env:/file: reference) and only to a host that proves
 * it holds one of the host keys in config. Any other key ends the attempt:
 * there is no trust-on-first-use.
 */
import ssh2 from 'ssh2';
import type { Target } from '../../../../proto/src/index.js';
import { resolveSecret } from '../../config/secrets.js';

export interface SshUpstream {
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** Raw public key blobs the host may present. */
  hostKeys: Buffer[];
  connectTimeoutMs: number;
}

export class UpstreamHostKeyError extends Error {}

export function resolveSshTarget(t: Target, baseDir: string): SshUpstream {
  if (t.kind.case !== 'ssh') throw new Error(`target ${t.name} is not an SSH target`);
  const s = t.kind.value;
  if (s.hostKeys.length === 0) throw new Error(`target ${t.name}: no host keys configured; the agent never trusts an unknown host`);
  return {
    name: t.name,
    host: s.host,
    port: s.port || 22,
    user: s.user,
    privateKey: resolveSecret(s.privateKeyRef, baseDir),
    hostKeys: s.hostKeys.map((k) => Buffer.from(k.split(' ')[1] ?? '', 'base64')),
    connectTimeoutMs: s.connectTimeoutMs || 10_000,
  };
}

/** Connects and authenticates to the target; rejects on a host key not in config. */
export function connectSshUpstream(up: SshUpstream): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const conn = new ssh2.Client();
    let presented: Buffer | undefined;
    conn.once('ready', () => resolve(conn));
    conn.once('error', (err) => {
      if (presented && !up.hostKeys.some((k) => k.equals(presented!))) {
        reject(new UpstreamHostKeyError(`target ${up.name} (${up.host}:${up.port}) presented a host key that is not in the configuration; refusing to connect`));
      } else {
        reject(new Error(`cannot reach SSH target ${up.name} (${up.host}:${up.port}): ${err.message}`));
      }
    });
    conn.connect({
      host: up.host,
      port: up.port,
      username: up.user,
      privateKey: up.privateKey,
      readyTimeout: up.connectTimeoutMs,
      hostVerifier: (key: Buffer) => {
        presented = key;
        return up.hostKeys.some((k) => k.equals(key));
      },
    });
    // Interactive traffic is many small packets: Nagle plus delayed ACKs would add ~40 ms per round trip.
    conn.setNoDelay(true);
  });
}
