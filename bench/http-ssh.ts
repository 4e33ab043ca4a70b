/**
 * `make bench-http-ssh`: what the HTTP and SSH engines cost, measured in
 * one run against the same targets directly and through an agent process.
 *
 *   HTTP: requests/s and latency for a small unmasked JSON response and for
 *   a 100-patient response with four masked fields per patient, with
 *   WARDEN_BENCH_CLIENTS concurrent keep-alive clients for
 *   WARDEN_BENCH_SECONDS each (upstream and load generator in this process).
 *   SSH: latency of one exec ("true") on an open connection, and of a login
 *   plus one exec, against a real sshd directly and through the agent.
 *
 * Prints a table and writes bench/out/http-ssh.json. Run after `make build`.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import ssh2 from 'ssh2';
import { Agent, request } from 'undici';
import { startOidcIssuer } from '../test/support/oidc-issuer.js';
import { startSshd } from '../test/support/sshd.js';
import { freePort, startAgentProcess } from './lib/processes.js';
import type { AgentConfig } from '../agent/src/config/types.js';

const seconds = Number(process.env.WARDEN_BENCH_SECONDS ?? 5);
const clients = Number(process.env.WARDEN_BENCH_CLIENTS ?? 16);
const sshRounds = Number(process.env.WARDEN_BENCH_SSH_ROUNDS ?? 200);

const SMALL = JSON.stringify({ ok: true, id: 42 });
const PATIENTS = JSON.stringify({
  patients: Array.from({ length: 100 }, (_, i) => ({
    id: i, name: `Patient ${i}`, ssn: `123-45-${String(1000 + i)}`, dob: '1961-03-04', mrn: `MRN-${10000 + i}`, email: `p${i}@example.org`, notes: 'stable',
  })),
});

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

async function load(url: string, headers: Record<string, string>): Promise<Load> {
  const dispatcher = new Agent({ connections: clients, pipelining: 1 });
  const lat: number[] = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        const res = await request(url, { headers, dispatcher });
        await res.body.text();
        if (res.statusCode !== 200) errors++;
        lat.push(performance.now() - t);
      }
    }),
  );
  await dispatcher.close();
  lat.sort((a, b) => a - b);
  return { rps: lat.length / seconds, p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors };
}

function sshConnect(opts: ssh2.ConnectConfig): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.connect({ host: '127.0.0.1', readyTimeout: 20_000, ...opts });
  });
}

function execTrue(c: ssh2.Client): Promise<void> {
  return new Promise((resolve, reject) =>
    c.exec('true', (err, ch) => {
      if (err) return reject(err);
      ch.on('close', () => resolve());
      ch.resume();
    }),
  );
}

async function sshLatency(opts: ssh2.ConnectConfig): Promise<{ execP50: number; execP99: number; loginExecP50: number }> {
  const c = await sshConnect(opts);
  const lat: number[] = [];
  for (let i = 0; i < sshRounds; i++) {
    const t = performance.now();
    await execTrue(c);
    lat.push(performance.now() - t);
  }
  c.end();
  const logins: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    const d = await sshConnect(opts);
    await execTrue(d);
    logins.push(performance.now() - t);
    d.end();
  }
  lat.sort((a, b) => a - b);
  logins.sort((a, b) => a - b);
  return { execP50: pct(lat, 0.5), execP99: pct(lat, 0.99), loginExecP50: pct(logins, 0.5) };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-http-ssh-'));
  const issuer = await startOidcIssuer({ tokenLifetimeSeconds: 3600 });
  const sshd = await startSshd();
  const upstream = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(req.url === '/patients' ? PATIENTS : SMALL);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  const httpPort = await freePort();
  const sshPort = await freePort();
  process.env.WARDEN_BENCH_HASH_KEY = 'bench-hash-key-0123456789abcdef';
  const config = {
    agent: { id: 'bench-http-ssh' },
    listeners: [
      { name: 'api', protocol: 'http', address: '127.0.0.1', port: httpPort, target: 'api', allowPlaintext: true },
      { name: 'lab', protocol: 'ssh', address: '127.0.0.1', port: sshPort, target: 'lab', hostKeyFile: sshd.listenerHostKeyFile },
    ],
    targets: [
      { name: 'api', kind: 'http', baseUrl: `http://127.0.0.1:${upstreamPort}` },
      { name: 'lab', kind: 'ssh', host: '127.0.0.1', port: sshd.port, user: sshd.user, privateKey: `file:${sshd.agentKeyFile}`, hostKeys: [sshd.hostPublicKey] },
    ],
    identity: { issuers: [{ issuer: issuer.issuer, audience: 'warden' }], groupMappings: [{ group: 'bench', role: 'bench' }] },
    roles: [
      {
        name: 'bench',
        targets: ['api', 'lab'],
        http: {
          routes: [
            {
              path: '/patients', action: 'allow',
              masks: [
                { path: '$.patients[*].ssn', mask: { strategy: 'partial', params: { keepSuffix: 4 } } },
                { path: '$.patients[*].dob', mask: { strategy: 'generalize-date' } },
                { path: '$.patients[*].mrn', mask: { strategy: 'tok' } },
                { path: '$..email', mask: { strategy: 'email-domain' } },
              ],
            },
            { path: '/**', action: 'allow' },
          ],
        },
        ssh: { exec: true },
      },
    ],
    masking: [{ name: 'tok', hash: { keyRef: 'env:WARDEN_BENCH_HASH_KEY' } }],
    recording: { kind: 'jsonl', path: path.join(dir, 'sessions.jsonl') },
  } as unknown as AgentConfig;
  const agent = await startAgentProcess(dir, config, httpPort, 'http-ssh-agent');
  const token = await issuer.sign({ sub: 'bench', groups: ['bench'] }, { expiresIn: 3600 });
  const auth = { authorization: `Bearer ${token}` };
  try {
    const rows: Array<[string, Load, Load]> = [];
    for (const [name, p] of [['small JSON, unmasked', '/small'], ['100 patients, 4 masked fields each', '/patients']] as const) {
      const direct = await load(`http://127.0.0.1:${upstreamPort}${p}`, {});
      const via = await load(`http://127.0.0.1:${httpPort}${p}`, auth);
      rows.push([name, direct, via]);
    }
    const directSsh = await sshLatency({ port: sshd.port, username: sshd.user, privateKey: fs.readFileSync(sshd.agentKeyFile) });
    const viaSsh = await sshLatency({ port: sshPort, username: 'bench', password: token });

    const lines = [
      `HTTP (${clients} keep-alive clients, ${seconds}s each; 2-core machine, load generator and upstream in one process)`,
      ...rows.map(([name, d, v]) =>
        `  ${name.padEnd(36)} direct ${d.rps.toFixed(0).padStart(6)} req/s p50 ${d.p50.toFixed(2)} ms p99 ${d.p99.toFixed(2)} ms | agent ${v.rps.toFixed(0).padStart(6)} req/s p50 ${v.p50.toFixed(2)} ms p99 ${v.p99.toFixed(2)} ms | ratio ${(v.rps / d.rps).toFixed(2)}${v.errors + d.errors ? ` ERRORS ${v.errors + d.errors}` : ''}`),
      `SSH (real sshd; ${sshRounds} execs of "true" on one connection, 20 logins)`,
      `  exec on an open connection: direct p50 ${directSsh.execP50.toFixed(2)} ms p99 ${directSsh.execP99.toFixed(2)} ms | agent p50 ${viaSsh.execP50.toFixed(2)} ms p99 ${viaSsh.execP99.toFixed(2)} ms`,
      `  login + one exec:           direct p50 ${directSsh.loginExecP50.toFixed(1)} ms | agent p50 ${viaSsh.loginExecP50.toFixed(1)} ms`,
    ];
    console.log(lines.join('\n'));
    const out = path.resolve('bench/out');
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'http-ssh.json'), JSON.stringify({ seconds, clients, http: rows, ssh: { direct: directSsh, agent: viaSsh } }, null, 2));
  } finally {
    agent.kill('SIGTERM');
    upstream.close();
    await issuer.close();
    await sshd.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
