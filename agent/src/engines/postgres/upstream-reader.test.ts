import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { UpstreamReader } from './upstream-reader.js';

const servers: net.Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** A TCP server that sends `pieces` one by one, each after the client's one-byte "next". */
async function pacedServer(pieces: Buffer[]): Promise<number> {
  const server = net.createServer((socket) => {
    let i = 0;
    const next = (): void => {
      if (i < pieces.length) socket.write(pieces[i++]!);
      else socket.end();
    };
    socket.on('data', next);
    next();
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

describe('UpstreamReader', () => {
  it('hands out chunks that later reads never overwrite, across slabs', async () => {
    // 400 reads of 1–3 KiB: many per 64 KiB slab, and about fifteen slabs in all.
    const pieces = Array.from({ length: 400 }, (_, i) => randomBytes(1024 + ((i * 997) % 2048)));
    const port = await pacedServer(pieces);
    const reader = new UpstreamReader();
    const socket = net.connect({ host: '127.0.0.1', port, onread: reader.onread });
    const held: Buffer[] = [];
    reader.listen((chunk) => {
      held.push(chunk);
      socket.write('n');
    });
    await once(socket, 'close');
    // Every chunk was kept as handed out, without copying: had a slab been read into twice, the
    // earlier chunks would now hold later bytes.
    const sent = Buffer.concat(pieces);
    const received = Buffer.concat(held);
    expect(received.length).toBe(sent.length);
    expect(createHash('sha256').update(received).digest('hex')).toBe(createHash('sha256').update(sent).digest('hex'));
    expect(new Set(held.map((c) => c.buffer)).size).toBeGreaterThan(5);
  });

  it('keeps what arrives before anyone listens, and delivers it first and in order', async () => {
    const pieces = [Buffer.from('first '), Buffer.from('second '), Buffer.from('third')];
    const server = net.createServer((socket) => {
      // All three at once, before the client listens.
      for (const p of pieces) socket.write(p);
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const reader = new UpstreamReader();
    const socket = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, onread: reader.onread });
    await once(socket, 'connect');
    await new Promise((r) => setTimeout(r, 50));
    let text = '';
    reader.listen((chunk) => (text += chunk.toString()));
    expect(text).toBe('first second third');
    socket.destroy();
  });

  it('stops reading while the socket is paused and resumes after', async () => {
    const pieces = Array.from({ length: 8 }, () => randomBytes(32 * 1024));
    const server = net.createServer((socket) => {
      for (const p of pieces) socket.write(p);
      socket.end();
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const reader = new UpstreamReader();
    const socket = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, onread: reader.onread });
    let bytes = 0;
    reader.listen((chunk) => {
      bytes += chunk.length;
      socket.pause();
    });
    await new Promise((r) => setTimeout(r, 100));
    // Paused after the first chunk: nothing more was read.
    const whilePaused = bytes;
    expect(whilePaused).toBeGreaterThan(0);
    expect(whilePaused).toBeLessThan(256 * 1024);
    reader.listen((chunk) => {
      bytes += chunk.length;
    });
    socket.resume();
    await once(socket, 'close');
    expect(bytes).toBe(256 * 1024);
  });
});
