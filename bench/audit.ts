/**
 * `make bench-audit`: the audit path alone — durable events per second from
 * the agent's spool through gRPC into the control plane's hash chain, and the
 * latency recording adds to a statement. Writes bench/out/audit-report.{txt,html}.
 *
 * Knobs: WARDEN_BENCH_AUDIT_STREAM_EVENTS (100000), WARDEN_BENCH_LATENCY_QUERIES (5000).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startOidcIssuer } from '../test/support/oidc-issuer.js';
import { loadParser } from '../agent/src/sql/index.js';
import { renderHtml, renderText } from './lib/report.js';
import { auditStreamSection, recordingLatencySection } from './lib/audit-stream.js';

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const outDir = path.resolve('bench/out');
  fs.mkdirSync(outDir, { recursive: true });
  const issuer = await startOidcIssuer();
  try {
    await loadParser();
    const token = await issuer.sign({ sub: 'bench-client', groups: ['bench'] }, { expiresIn: 7200 });
    const sections = [await auditStreamSection(issuer.issuer, log), await recordingLatencySection(issuer.issuer, token, log)];
    const title = 'Warden audit benchmark';
    const meta = { date: new Date().toISOString(), host: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`, node: process.version };
    const text = renderText(title, sections);
    process.stdout.write(text);
    fs.writeFileSync(path.join(outDir, 'audit-report.txt'), text);
    fs.writeFileSync(path.join(outDir, 'audit-report.html'), renderHtml(title, sections, meta));
  } finally {
    await issuer.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
