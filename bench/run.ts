/**
 * `make bench`: pgbench select-only against PostgreSQL directly, through
 * the Warden agent and through pgbouncer, in the same run, simple and
 * prepared protocol. Prints TPS, latency and the ratios, and writes
 * bench/out/report.{txt,html,json}.
 *
 * Knobs: WARDEN_BENCH_SECONDS (10), WARDEN_BENCH_CLIENTS (8),
 * WARDEN_BENCH_SCALE (10), WARDEN_BENCH_ROUNDS (1), and the WARDEN_TEST_PG*
 * variables for where PostgreSQL is.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startOidcIssuer } from '../test/support/oidc-issuer.js';
import { services } from '../test/support/services.js';
import { ensurePgbenchData, pgbench, type PgbenchResult, type PgbenchTarget } from './lib/pgbench.js';
import { freePort, startAgentProcess, startPgbouncer } from './lib/processes.js';
import { renderHtml, renderText, type ReportSection } from './lib/report.js';
import type { AgentConfig } from '../agent/src/config/types.js';

const seconds = Number(process.env.WARDEN_BENCH_SECONDS ?? 10);
const clients = Number(process.env.WARDEN_BENCH_CLIENTS ?? 8);
const scale = Number(process.env.WARDEN_BENCH_SCALE ?? 10);
const rounds = Number(process.env.WARDEN_BENCH_ROUNDS ?? 1);
const database = 'warden_bench';
const pgHost = services.postgres.host;
const pgPort = services.postgres.port;
const pgUser = services.postgres.user;

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const outDir = path.resolve('bench/out');
  fs.mkdirSync(outDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-'));
  const children: ChildProcess[] = [];
  const issuer = await startOidcIssuer();
  try {
    log(`preparing pgbench data (scale ${scale}) in ${database}`);
    await ensurePgbenchData(pgHost, pgPort, pgUser, database, scale);

    const agentPort = await freePort();
    const config: AgentConfig = {
      agent: { id: 'bench-agent' },
      listeners: [{ name: 'pg', protocol: 'postgres', address: '127.0.0.1', port: agentPort, target: database, allowPlaintext: true }],
      targets: [{ name: database, kind: 'postgres', host: pgHost, port: pgPort, database, user: pgUser }],
      identity: { issuers: [{ issuer: issuer.issuer, audience: 'warden' }], groupMappings: [{ group: 'bench', role: 'bench' }] },
      roles: [{ name: 'bench', targets: [database], defaultAction: 'allow', tables: [] }],
      enforcement: 'relay-only',
      recording: { kind: 'jsonl', path: path.join(work, 'sessions.jsonl') },
    };
    log('starting the agent and pgbouncer');
    const agent = await startAgentProcess(work, config, agentPort);
    children.push(agent);
    const bouncerPort = await freePort();
    children.push(await startPgbouncer(work, { host: pgHost, port: pgPort, user: pgUser, database }, bouncerPort, clients));
    const token = await issuer.sign({ sub: 'bench-client', groups: ['bench'] }, { expiresIn: 7200 });

    const targets: PgbenchTarget[] = [
      { label: 'direct', host: pgHost, port: pgPort, user: pgUser, database },
      { label: 'pgbouncer', host: '127.0.0.1', port: bouncerPort, user: pgUser, database },
      { label: 'agent', host: '127.0.0.1', port: agentPort, user: 'bench-client', database, password: token },
    ];
    const results: PgbenchResult[] = [];
    const total = rounds * 2 * targets.length;
    let n = 0;
    for (let round = 0; round < rounds; round++) {
      for (const mode of ['simple', 'prepared'] as const) {
        for (const t of targets) {
          n++;
          log(`(${n}/${total}) pgbench -S -M ${mode} -c ${clients} -j 2 -T ${seconds} → ${t.label}`);
          const r = await pgbench(t, mode, { clients, threads: 2, seconds });
          log(`         ${r.tps.toFixed(0)} tps, ${r.latencyMs.toFixed(3)} ms`);
          results.push(r);
        }
      }
    }

    const best = (label: string, mode: string): PgbenchResult => {
      const rs = results.filter((r) => r.label === label && r.mode === mode).sort((a, b) => b.tps - a.tps);
      return rs[0]!;
    };
    const sections: ReportSection[] = (['simple', 'prepared'] as const).map((mode) => {
      const d = best('direct', mode);
      const b = best('pgbouncer', mode);
      const a = best('agent', mode);
      return {
        title: `pgbench -S -M ${mode}, ${clients} clients, ${seconds}s (best of ${rounds})`,
        rows: [
          { name: 'direct', value: `${d.tps.toFixed(0)} tps`, note: `${d.latencyMs.toFixed(3)} ms avg` },
          { name: 'pgbouncer', value: `${b.tps.toFixed(0)} tps`, note: `${b.latencyMs.toFixed(3)} ms avg` },
          { name: 'agent', value: `${a.tps.toFixed(0)} tps`, note: `${a.latencyMs.toFixed(3)} ms avg` },
          { name: 'agent / direct', value: (a.tps / d.tps).toFixed(2) },
          { name: 'agent / pgbouncer', value: (a.tps / b.tps).toFixed(2), note: 'target ≥ 0.80' },
          { name: 'pgbouncer / direct', value: (b.tps / d.tps).toFixed(2) },
        ],
      };
    });
    const title = 'Warden agent benchmark';
    const meta = { date: new Date().toISOString(), host: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`, node: process.version };
    const text = renderText(title, sections);
    process.stdout.write(text);
    fs.writeFileSync(path.join(outDir, 'report.txt'), text);
    fs.writeFileSync(path.join(outDir, 'report.html'), renderHtml(title, sections, meta));
    fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify({ meta, results }, null, 2));
    log(`reports in ${outDir}/report.{txt,html,json}`);
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await issuer.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
