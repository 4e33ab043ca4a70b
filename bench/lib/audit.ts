/** Audit chain append throughput: committed (durable) events per second into PostgreSQL. */
import pg from 'pg';
import { AuditChain } from '../../control-plane/src/audit/hash-chain.js';
import { services } from '../../test/support/services.js';
import type { ReportSection } from './report.js';

export async function auditAppendSection(log: (s: string) => void): Promise<ReportSection> {
  const pool = new pg.Pool({ ...services.postgres, max: 2 });
  const schema = `warden_bench_audit_${process.pid}`;
  const chain = new AuditChain(pool, schema);
  try {
    await chain.migrate();
    const total = Number(process.env.WARDEN_BENCH_AUDIT_EVENTS ?? 100_000);
    const batch = 1000;
    log(`appending ${total} audit events in batches of ${batch}`);
    const t0 = performance.now();
    for (let i = 0; i < total; i += batch) {
      await chain.append(
        Array.from({ length: batch }, (_, k) => ({
          sessionId: `session-${(i + k) % 64}`,
          sessionSeq: Math.floor((i + k) / 64) + 1,
          event: { type: 'statement', text: 'SELECT id, mrn FROM clinic.patients WHERE id = $1', rows: 1, decision: 'mask', maskedColumns: [{ column: 'clinic.patients.mrn', strategy: 'hash' }], durationMs: 0.42 },
        })),
      );
    }
    const seconds = (performance.now() - t0) / 1000;
    const verifyStart = performance.now();
    const { generateKeyPairSync, createPublicKey } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('ed25519');
    await chain.checkpoint(privateKey);
    const v = await chain.verify(createPublicKey(privateKey));
    const verifySeconds = (performance.now() - verifyStart) / 1000;
    return {
      title: `audit hash chain in PostgreSQL (${total} events, batches of ${batch}, each batch one committed transaction)`,
      rows: [
        { name: 'durable appends', value: `${(total / seconds).toFixed(0)} events/s`, note: 'target ≥ 20,000/s' },
        { name: 'verify (recompute chain + checkpoint)', value: `${(v.checked / verifySeconds).toFixed(0)} records/s`, note: v.ok ? 'chain verified' : `FAILED: ${v.problem?.detail}` },
      ],
    };
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
  }
}
