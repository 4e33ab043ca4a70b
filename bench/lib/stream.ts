/**
 * Streams one large result over a raw protocol connection and measures it:
 * rows, bytes and time to the final ReadyForQuery. The client reads as
 * fast as it can and keeps nothing, so the number is the server path's.
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';

export interface StreamResult {
  rows: number;
  bytes: number;
  seconds: number;
}

export function streamQuery(opts: { port: number; host?: string; user: string; database: string; password?: string; sql: string }): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host ?? '127.0.0.1', port: opts.port });
    let started = 0;
    let rows = 0;
    let bytes = 0;
    let phase: 'login' | 'query' = 'login';
    // Tracks message boundaries across chunks without copying payloads.
    let header = Buffer.alloc(0);
    let remaining = 0;
    let currentType = 0;
    socket.on('connect', () => socket.write(serialize.startup({ user: opts.user, database: opts.database })));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      if (phase === 'query') bytes += chunk.length;
      let pos = 0;
      while (pos < chunk.length) {
        if (remaining > 0) {
          const n = Math.min(remaining, chunk.length - pos);
          remaining -= n;
          pos += n;
          continue;
        }
        const need = 5 - header.length;
        header = Buffer.concat([header, chunk.subarray(pos, pos + need)]);
        pos += Math.min(need, chunk.length - pos);
        if (header.length < 5) break;
        currentType = header[0]!;
        remaining = header.readInt32BE(1) - 4;
        header = Buffer.alloc(0);
        if (currentType === 0x44) rows++;
        else if (currentType === 0x52 && phase === 'login' && remaining === 4) {
          // Authentication request: answer a cleartext request with the password (the agent's token).
          const code = chunk.readInt32BE(pos);
          if (code === 3) socket.write(serialize.password(opts.password ?? ''));
        } else if (currentType === 0x45) {
          reject(new Error(`server error: ${chunk.subarray(pos, pos + remaining).toString('utf8').replace(/\0/g, ' ')}`));
          socket.destroy();
          return;
        } else if (currentType === 0x5a) {
          if (phase === 'login') {
            phase = 'query';
            rows = 0;
            started = performance.now();
            socket.write(serialize.query(opts.sql));
          } else {
            const seconds = (performance.now() - started) / 1000;
            socket.end(serialize.end());
            resolve({ rows, bytes, seconds });
            return;
          }
        }
      }
    });
  });
}
