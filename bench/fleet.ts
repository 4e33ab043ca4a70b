/**
 * `make bench-fleet`: time from a git commit (with its signed webhook) to 50
 * agents on the new version, end to end in one run (see lib/fleet.ts).
 * Writes bench/out/fleet.{txt,html,json}.
 *
 * Knobs: WARDEN_BENCH_FLEET_AGENTS (50), WARDEN_BENCH_FLEET_ROUNDS (10), and
 * the WARDEN_TEST_PG* variables for where PostgreSQL is.
 */
import { fleetRollout, fleetSection } from './lib/fleet.js';
import { writeReports } from './lib/report.js';

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const result = await fleetRollout(log, {
    agents: Number(process.env.WARDEN_BENCH_FLEET_AGENTS ?? 50),
    rounds: Number(process.env.WARDEN_BENCH_FLEET_ROUNDS ?? 10),
  });
  writeReports('fleet', 'Warden config rollout benchmark', [fleetSection(result)], result, log);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
