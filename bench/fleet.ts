/**
 * `make bench-fleet`: time from a git commit (with its signed webhook) to 50
 * agents on the new version, end to end in one run (see lib/fleet.ts).
 * Writes bench/out/fleet.{txt,html,json}.
 *
 * Knobs: WARDEN_BENCH_FLEET_AGENTS (50), WARDEN_BENCH_FLEET_ROUNDS (10), and
 * the WARDEN_TEST_PG* variables for where PostgreSQL is.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fleetRollout, fleetSection } from './lib/fleet.js';
import { renderHtml, renderText } from './lib/report.js';

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const outDir = path.resolve('bench/out');
  fs.mkdirSync(outDir, { recursive: true });
  const result = await fleetRollout(log, {
    agents: Number(process.env.WARDEN_BENCH_FLEET_AGENTS ?? 50),
    rounds: Number(process.env.WARDEN_BENCH_FLEET_ROUNDS ?? 10),
  });
  const title = 'Warden config rollout benchmark';
  const sections = [fleetSection(result)];
  const meta = { date: new Date().toISOString(), host: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`, node: process.version };
  const text = renderText(title, sections);
  process.stdout.write(text);
  fs.writeFileSync(path.join(outDir, 'fleet.txt'), text);
  fs.writeFileSync(path.join(outDir, 'fleet.html'), renderHtml(title, sections, meta));
  fs.writeFileSync(path.join(outDir, 'fleet.json'), JSON.stringify({ meta, result }, null, 2));
  log(`reports in ${outDir}/fleet.{txt,html,json}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
