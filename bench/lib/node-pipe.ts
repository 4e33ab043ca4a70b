/**
 * The runtime floor for `make bench`: a Node.js TCP pipe to PostgreSQL that
 * does nothing else (no framing, no identity, no recording). Whatever the
 * agent loses to pgbouncer beyond what this loses is the agent's own work.
 *
 *   node dist/bench/lib/node-pipe.js <listen-port> <upstream-host> <upstream-port>
 */
import net from 'node:net';

const [listenPort, upstreamHost, upstreamPort] = process.argv.slice(2);
if (!listenPort || !upstreamHost || !upstreamPort) {
  process.stderr.write('usage: node-pipe <listen-port> <upstream-host> <upstream-port>\n');
  process.exit(2);
}

net
  .createServer((client) => {
    const upstream = net.connect(Number(upstreamPort), upstreamHost);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  })
  .listen(Number(listenPort), '127.0.0.1');
