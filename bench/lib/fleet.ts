/**
 * Commit → fleet, end to end in one run: a git commit, the push webhook
 * signed like GitHub's, the control plane (its own process, compiling the
 * commit and running the repository's policy tests) signing the bundle and
 * streaming it over gRPC with TLS, and 50 managed agents applying it and
 * acknowledging. The 50 agents are in-process ManagedAgents hosted by this
 * benchmark process (each with its own identity, state directory, gRPC
 * channel and PostgreSQL listener); the control plane is a separate process.
 *
 * Two moments are timed from just before the commit: when the last of the
 * 50 agents has applied the version (its own event), and when the control
 * plane's API (GET /v1/agents) shows all 50 at the version — that is, every
 * acknowledgement has been received and stored. The target is < 2 s.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import { pino } from 'pino';
import { startManagedAgent, type ManagedAgent } from '../../agent/src/control/managed-agent.js';
import { makeRepo } from '../../control-plane/src/gitops/test-support.js';
import { makeTestPki } from '../../test/support/certs.js';
import { startOidcIssuer } from '../../test/support/oidc-issuer.js';
import { freePort } from '../../test/support/processes.js';
import { services } from '../../test/support/services.js';
import {
  issueEnrollmentToken,
  phiConfigRepo,
  phiSchemaSql,
  pushWebhook,
  startControlPlaneProcess,
  waitForAgents,
  waitForReady,
  type ControlPlaneProcess,
} from '../../test/support/control-plane-processes.js';
import { quantile, type ReportSection } from './report.js';

export interface FleetResult {
  agents: number;
  /** How the control-plane process ran: compiled JS (make bench) or through tsx. */
  controlPlane: 'dist' | 'tsx';
  rounds: Array<{ sha: string; webhookMs: number; allAppliedMs: number; apiConfirmedMs: number }>;
}


export async function fleetRollout(log: (s: string) => void, opts: { agents?: number; rounds?: number } = {}): Promise<FleetResult> {
  const count = opts.agents ?? 50;
  const roundCount = opts.rounds ?? 10;
  const mode: FleetResult['controlPlane'] = import.meta.url.includes('/dist/') ? 'dist' : 'tsx';
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-fleet-'));
  const id = `${process.pid}`;
  const phiSchema = `fleet_phi_${id}`;
  const cpSchema = `fleet_cp_${id}`;
  const secret = 'fleet-bench-webhook-secret';
  const pool = new pg.Pool({ ...services.postgres, max: 1 });
  const [issuer, pki, repo] = await Promise.all([startOidcIssuer(), makeTestPki(), makeRepo('main', path.join(work, 'config'))]);
  const agents: ManagedAgent[] = [];
  let cp: ControlPlaneProcess | undefined;
  try {
    await pool.query(phiSchemaSql(phiSchema));
    // Port 0: each agent's listener gets its own ephemeral port.
    const repoOptions = { phiSchema, issuer: issuer.issuer, listenerPort: 0 };
    await repo.commit(phiConfigRepo({ ...repoOptions, maxRows: 100 }), 'initial policy');
    fs.mkdirSync(path.join(work, 'cp'));
    log(`starting the control plane process (${mode}) and ${count} in-process managed agents`);
    cp = await startControlPlaneProcess({
      mode,
      dir: path.join(work, 'cp'),
      repoDir: repo.dir,
      databaseSchema: cpSchema,
      issuer: issuer.issuer,
      webhookSecret: secret,
      httpPort: await freePort(),
      grpcPort: await freePort(),
      tls: { certFile: pki.paths.serverCert, keyFile: pki.paths.serverKey },
      logLevel: 'warn',
    });
    await waitForReady(cp.http);
    const http = cp.http;
    const admin = await issuer.sign({ sub: 'bench', groups: ['platform-admins'] }, { audience: 'warden-api', expiresIn: 3600 });
    const token = await issueEnrollmentToken(http, admin, { reusable: true, ttlSeconds: 600 });
    const silent = pino({ level: 'silent' });
    const credentials = grpc.credentials.createSsl(Buffer.from(pki.caCert));
    for (let i = 0; i < count; i++) {
      const dir = path.join(work, `agent-${i}`);
      agents.push(
        await startManagedAgent({ address: `localhost:${cp.grpc}`, credentials, stateDir: dir, log: silent, recordingPath: path.join(dir, 'sessions.jsonl'), enrollment: { token, name: `fleet-${i}` } }),
      );
    }
    await Promise.all(agents.map((a) => a.ready));
    const bearer = async (): Promise<string> => admin;
    await waitForAgents(http, bearer, (list) => list.length === count && list.every((a) => a.connected && a.appliedVersion));

    const rounds: FleetResult['rounds'] = [];
    for (let r = 1; r <= roundCount; r++) {
      const files = phiConfigRepo({ ...repoOptions, maxRows: 100 + r });
      let sha = '';
      const applied = new Set<ManagedAgent>();
      let allApplied!: () => void;
      const allAppliedP = new Promise<void>((resolve) => (allApplied = resolve));
      const listeners = agents.map((a) => {
        const on = (version: string): void => {
          if (version !== sha) return;
          applied.add(a);
          if (applied.size === count) allApplied();
        };
        a.link.on('applied', on);
        return () => a.link.off('applied', on);
      });
      const t0 = performance.now();
      sha = await repo.commit(files, `round ${r}: maxRows ${100 + r}`);
      const res = await pushWebhook(http, secret, 'main', sha);
      const webhookMs = performance.now() - t0;
      if (res.status !== 202) throw new Error(`webhook answered ${res.status}`);
      await Promise.race([allAppliedP, new Promise((_, reject) => setTimeout(() => reject(new Error(`round ${r}: only ${applied.size}/${count} agents applied ${sha} within 10 s`)), 10_000))]);
      const allAppliedMs = performance.now() - t0;
      await waitForAgents(http, bearer, (list) => list.filter((a) => a.appliedVersion === sha).length === count, 10_000, 5);
      const apiConfirmedMs = performance.now() - t0;
      listeners.forEach((off) => off());
      rounds.push({ sha, webhookMs, allAppliedMs, apiConfirmedMs });
      log(`  round ${r}/${roundCount}: webhook ${webhookMs.toFixed(0)} ms, all ${count} applied ${allAppliedMs.toFixed(0)} ms, API shows all ${count} ${apiConfirmedMs.toFixed(0)} ms`);
    }
    return { agents: count, controlPlane: mode, rounds };
  } finally {
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
    await cp?.kill('SIGTERM');
    await pool.query(`DROP SCHEMA IF EXISTS "${phiSchema}" CASCADE; DROP SCHEMA IF EXISTS "${cpSchema}" CASCADE`).catch(() => undefined);
    await pool.end();
    await issuer.close();
    await pki.remove();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function fleetSection(r: FleetResult): ReportSection {
  const row = (name: string, xs: number[], note?: string) => ({
    name,
    value: `median ${quantile(xs, 0.5).toFixed(0)} ms`,
    note: `p90 ${quantile(xs, 0.9).toFixed(0)} ms, max ${Math.max(...xs).toFixed(0)} ms${note ? `; ${note}` : ''}`,
  });
  const confirmed = r.rounds.map((x) => x.apiConfirmedMs);
  return {
    title: `git commit → ${r.agents} agents on the new version (${r.rounds.length} commits; webhook signed like GitHub's; gRPC over TLS; control plane in its own process (${r.controlPlane}), ${r.agents} ManagedAgents in the benchmark process)`,
    rows: [
      row('commit + webhook answered (202)', r.rounds.map((x) => x.webhookMs)),
      row(`all ${r.agents} agents applied`, r.rounds.map((x) => x.allAppliedMs)),
      row(`control-plane API shows all ${r.agents} acknowledged`, confirmed, 'target < 2000 ms'),
      { name: 'rounds under 2 s', value: `${confirmed.filter((x) => x < 2000).length}/${confirmed.length}` },
    ],
  };
}
