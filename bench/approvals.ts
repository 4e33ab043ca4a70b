/**
 * `make bench-approvals`: decision → first row for held statements (see
 * lib/approvals.ts). Writes bench/out/approvals.{txt,html,json}.
 * Knob: WARDEN_BENCH_APPROVAL_ROUNDS (20).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { approvalLatency, approvalSection } from './lib/approvals.js';
import { renderHtml, renderText } from './lib/report.js';

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const outDir = path.resolve('bench/out');
  fs.mkdirSync(outDir, { recursive: true });
  const result = await approvalLatency(log, Number(process.env.WARDEN_BENCH_APPROVAL_ROUNDS ?? 20));
  const title = 'Warden approval latency benchmark';
  const sections = [approvalSection(result)];
  const meta = { date: new Date().toISOString(), host: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`, node: process.version };
  const text = renderText(title, sections);
  process.stdout.write(text);
  fs.writeFileSync(path.join(outDir, 'approvals.txt'), text);
  fs.writeFileSync(path.join(outDir, 'approvals.html'), renderHtml(title, sections, meta));
  fs.writeFileSync(path.join(outDir, 'approvals.json'), JSON.stringify({ meta, result }, null, 2));
  log(`reports in ${outDir}/approvals.{txt,html,json}`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
