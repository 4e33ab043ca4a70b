/**
 * `make bench-approvals`: decision → first row for held statements (see
 * lib/approvals.ts). Writes bench/out/approvals.{txt,html,json}.
 * Knob: WARDEN_BENCH_APPROVAL_ROUNDS (20).
 */
import { approvalLatency, approvalSection } from './lib/approvals.js';
import { writeReports } from './lib/report.js';

const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);

async function main(): Promise<void> {
  const result = await approvalLatency(log, Number(process.env.WARDEN_BENCH_APPROVAL_ROUNDS ?? 20));
  writeReports('approvals', 'Warden approval latency benchmark', [approvalSection(result)], result, log);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
