/**
 * pgbench through each proxy, in interleaved rounds: every round runs each
 * target once, back to back, so a ratio compares runs that saw the same
 * machine. On a shared or virtualised 2-core box a single run's TPS swings by
 * tens of percent; the median of per-round ratios does not. Each proxy's CPU
 * time per transaction is read from /proc, a second view that does not
 * depend on what else the machine was doing.
 */
import { pgbench, type PgbenchResult, type PgbenchTarget } from './pgbench.js';
import { cpuMicros } from './processes.js';
import { quantile, type ReportSection } from './report.js';

export interface CompareTarget extends PgbenchTarget {
  /** The proxy's process, for CPU per transaction; none for direct. */
  pid?: number;
  name: string;
}

export interface Measured extends PgbenchResult {
  round: number;
  /** Proxy CPU per transaction, microseconds (user, system). */
  cpuUserUs?: number;
  cpuSystemUs?: number;
}

export type Mode = 'simple' | 'prepared';

export interface CompareOptions {
  rounds: number;
  clients: number;
  seconds: number;
}

export async function measureRounds(targets: CompareTarget[], modes: readonly Mode[], opts: CompareOptions, log: (s: string) => void): Promise<Measured[]> {
  const load = { clients: opts.clients, threads: 2 };
  // A long-running agent has its hot path compiled: a short unmeasured run of each first.
  log(`warm-up: 2 s of each mode through each target`);
  for (const mode of modes) for (const t of targets) await pgbench(t, mode, { ...load, seconds: 2 });
  const out: Measured[] = [];
  const total = opts.rounds * modes.length * targets.length;
  let n = 0;
  for (let round = 0; round < opts.rounds; round++) {
    for (const mode of modes) {
      for (const t of targets) {
        n++;
        log(`(${n}/${total}) round ${round + 1}: pgbench -S -M ${mode} -c ${opts.clients} -j 2 -T ${opts.seconds} → ${t.label}`);
        const before = t.pid ? cpuMicros(t.pid) : undefined;
        const r = await pgbench(t, mode, { ...load, seconds: opts.seconds });
        const m: Measured = { ...r, round };
        if (t.pid && before) {
          const after = cpuMicros(t.pid);
          m.cpuUserUs = (after.user - before.user) / r.transactions;
          m.cpuSystemUs = (after.system - before.system) / r.transactions;
        }
        log(`         ${r.tps.toFixed(0)} tps, ${r.latencyMs.toFixed(3)} ms${m.cpuUserUs !== undefined ? `, proxy CPU ${(m.cpuUserUs + m.cpuSystemUs!).toFixed(1)} µs/tx` : ''}`);
        out.push(m);
      }
    }
  }
  return out;
}

const median = (xs: number[]): number => quantile(xs, 0.5);
const spread = (xs: number[], digits: number): string => (xs.length > 1 ? `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}` : '');

/** One section per mode: each target's median TPS, latency and CPU per transaction, then the ratios. */
export function compareSections(results: Measured[], targets: CompareTarget[], modes: readonly Mode[], opts: CompareOptions): ReportSection[] {
  return modes.map((mode) => {
    const of = (label: string): Measured[] => results.filter((r) => r.mode === mode && r.label === label).sort((a, b) => a.round - b.round);
    const rows: ReportSection['rows'] = targets.map((t) => {
      const rs = of(t.label);
      const cpu = rs.filter((r) => r.cpuUserUs !== undefined).map((r) => r.cpuUserUs! + r.cpuSystemUs!);
      const user = rs.filter((r) => r.cpuUserUs !== undefined).map((r) => r.cpuUserUs!);
      const notes = [`${median(rs.map((r) => r.latencyMs)).toFixed(3)} ms avg`];
      if (cpu.length > 0) notes.push(`proxy CPU ${median(cpu).toFixed(1)} µs/tx (user ${median(user).toFixed(1)})`);
      if (rs.length > 1) notes.push(`rounds ${spread(rs.map((r) => r.tps), 0)}`);
      return { name: t.name, value: `${median(rs.map((r) => r.tps)).toFixed(0)} tps`, note: notes.join(', ') };
    });
    // Ratios pair the runs of one round: the median of those, and their range.
    const ratio = (a: string, b: string, name: string, note?: string): ReportSection['rows'][number] => {
      const base = of(b);
      const xs = of(a).map((r, i) => r.tps / base[i]!.tps);
      const range = spread(xs, 2);
      return { name, value: median(xs).toFixed(2), ...(note || range ? { note: [note, range && `rounds ${range}`].filter(Boolean).join(', ') } : {}) };
    };
    const has = (label: string): boolean => targets.some((t) => t.label === label);
    rows.push(ratio('agent', 'direct', 'agent / direct'));
    rows.push(ratio('agent', 'pgbouncer', 'agent / pgbouncer', 'target ≥ 0.80'));
    if (has('agent-js')) rows.push(ratio('agent-js', 'pgbouncer', 'agent (JS relay) / pgbouncer'));
    // A policy session always runs on the JavaScript relay: its cost is measured against that relay alone.
    if (has('agent+policy')) rows.push(has('agent-js') ? ratio('agent+policy', 'agent-js', 'agent+policy / agent (JS relay)', 'target ≥ 0.85') : ratio('agent+policy', 'agent', 'agent+policy / agent', 'target ≥ 0.85'));
    if (has('node-pipe')) rows.push(ratio('node-pipe', 'pgbouncer', 'node pipe / pgbouncer', 'the Node.js runtime floor'));
    rows.push(ratio('pgbouncer', 'direct', 'pgbouncer / direct'));
    return { title: `pgbench -S -M ${mode}, ${opts.clients} clients, ${opts.seconds} s, median of ${opts.rounds} interleaved round${opts.rounds === 1 ? '' : 's'}`, rows };
  });
}
