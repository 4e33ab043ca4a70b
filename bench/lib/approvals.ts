/**
 * Decision → first row: how long a held client waits after the last
 * approver decides. Two control-plane replicas share PostgreSQL and Redis;
 * the agent is connected to replica A, the approver decides on replica B
 * (so the decision crosses Redis pub/sub, the database, the gRPC stream,
 * the agent's signature check and the upstream query). Target < 200 ms.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { startControlPlane, type ControlPlaneConfig, type RunningControlPlane } from '../../control-plane/src/control-plane.js';
import { startManagedAgent } from '../../agent/src/control/managed-agent.js';
import { makeRepo } from '../../control-plane/src/gitops/test-support.js';
import { startOidcIssuer } from '../../test/support/oidc-issuer.js';
import { hospitalRepoIn } from '../../test/support/hospital-repo.js';
import { services } from '../../test/support/services.js';
import { testControlPlaneConfig, TEST_REDIS_URL } from '../../test/support/control-plane-config.js';
import { loadPhi } from '../../test/fixtures/phi/generate.js';
import { quantile, type ReportSection } from './report.js';

export interface ApprovalLatency {
  rounds: number[];
}

export async function approvalLatency(log: (s: string) => void, rounds = 20): Promise<ApprovalLatency> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-bench-approval-'));
  const phi = `bench_appr_${process.pid}`;
  const cpSchema = `bench_appr_cp_${process.pid}`;
  const silent = pino({ level: 'silent' });
  process.env.WARDEN_HASH_KEY ??= 'a-hash-key-of-sufficient-length-0123';
  const direct = new pg.Client({ ...services.postgres });
  await direct.connect();
  const issuer = await startOidcIssuer();
  const cps: RunningControlPlane[] = [];
  let stopAgent: (() => Promise<void>) | undefined;
  try {
    await loadPhi(direct, { patients: 50, schema: phi, seed: 3 });
    const repo = await makeRepo('main', path.join(work, 'config'));
    const files = hospitalRepoIn(phi);
    files['identity.yaml'] = files['identity.yaml']!.replaceAll('https://idp.example.org/realms/hospital', issuer.issuer);
    await repo.commit(files, 'hospital policy');
    const config: ControlPlaneConfig = testControlPlaneConfig(
      { repoDir: repo.dir, issuer: issuer.issuer, signingKeyFile: path.join(work, 'signing.key'), schema: cpSchema, capabilities: { approver: ['charge-nurses'] } },
      { approvals: { redisUrl: TEST_REDIS_URL } },
    );
    for (let i = 0; i < 2; i++) cps.push(await startControlPlane({ ...config, grpc: { ...config.grpc } }, { log: silent }));
    for (const cp of cps) for (let i = 0; i < 200 && !cp.watcher.current; i++) await new Promise((r) => setTimeout(r, 25));
    const [a, b] = cps as [RunningControlPlane, RunningControlPlane];
    const agent = await startManagedAgent({
      address: `127.0.0.1:${a.grpcPort}`,
      credentials: grpc.credentials.createInsecure(),
      stateDir: path.join(work, 'agent'),
      log: silent,
      recordingPath: path.join(work, 'agent', 'sessions.jsonl'),
      enrollment: { token: await a.registry.createToken({ ttlMs: 60_000 }), name: 'bench' },
    });
    stopAgent = () => agent.stop();
    await agent.ready;
    const port = agent.agent!.addresses.get('clinical-pg')!.port;
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'care-bot', database: 'clinical', password: await issuer.sign({ sub: 'care-bot', groups: ['care-coordinators'] }, { expiresIn: 3600 }) });
    const notices: string[] = [];
    client.on('notice', (n) => notices.push(n.message ?? ''));
    await client.connect();
    const nurse = await issuer.sign({ sub: 'nurse-1', groups: ['charge-nurses'] }, { audience: 'warden-api', expiresIn: 3600 });
    const out: number[] = [];
    log(`approval latency: ${rounds} held statements, decided on replica B, agent on replica A`);
    for (let r = 0; r < rounds; r++) {
      notices.length = 0;
      let firstRowAt = 0;
      const q = client.query(new pg.Query(`SELECT id, phone FROM ${phi}.patients WHERE id = ${(r % 50) + 1}`));
      q.on('row', () => (firstRowAt ||= performance.now()));
      const done = new Promise((resolve, reject) => (q.on('end', resolve), q.on('error', reject)));
      let id: string | undefined;
      while (!(id = notices.map((n) => /request (\S+) is waiting/.exec(n)?.[1]).find(Boolean))) await new Promise((res) => setTimeout(res, 2));
      while (!(await b.approvals.known(id))) await new Promise((res) => setTimeout(res, 2));
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${b.port}/v1/approvals/${id}/decision`, { method: 'POST', headers: { authorization: `Bearer ${nurse}`, 'content-type': 'application/json' }, body: '{"decision":"approve"}' });
      if (res.status !== 200) throw new Error(`decision answered ${res.status}`);
      await done;
      out.push(firstRowAt - t0);
    }
    await client.end();
    return { rounds: out };
  } finally {
    await stopAgent?.();
    for (const cp of cps) await cp.stop();
    await direct.query(`DROP SCHEMA IF EXISTS "${phi}" CASCADE; DROP SCHEMA IF EXISTS "${cpSchema}" CASCADE`);
    await direct.end();
    await issuer.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function approvalSection(r: ApprovalLatency): ReportSection {
  const xs = r.rounds;
  return {
    title: `approval decision → first row at the held client (${xs.length} statements; decided on replica B through the API, agent on replica A; Redis pub/sub, signed record verified by the agent)`,
    rows: [
      { name: 'median', value: `${quantile(xs, 0.5).toFixed(1)} ms`, note: 'measured from sending the deciding POST' },
      { name: 'p90', value: `${quantile(xs, 0.9).toFixed(1)} ms` },
      { name: 'max', value: `${Math.max(...xs).toFixed(1)} ms`, note: 'target < 200 ms' },
    ],
  };
}
