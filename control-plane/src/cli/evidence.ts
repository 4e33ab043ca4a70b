/**
 * `warden evidence export`: the evidence report for a period, from the
 * control plane's database (with progress while the audit log is read) or
 * from its API, written as HTML, JSON and/or CSV.
 */
import fs from 'node:fs';
import { createPublicKey } from 'node:crypto';
import pg from 'pg';
import { collectEvidence } from '../evidence/collect.js';
import { EVIDENCE_FORMATS, writeEvidence, type EvidenceFormat } from '../evidence/export.js';
import type { EvidenceReport } from '../evidence/report.js';
import type { ApiTarget } from './api-client.js';

export interface EvidenceArgs {
  from?: string;
  to?: string;
  format?: string;
  out?: string;
  databaseUrl?: string;
  schema: string;
  publicKey?: string;
  api?: ApiTarget | string;
  json: boolean;
}

/** YYYY-MM-DD (a whole UTC day; `--to` is inclusive) or a full ISO timestamp. */
function parseDate(s: string, endOfDay: boolean): Date | undefined {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(s) ? `${s}T00:00:00Z` : s);
  if (Number.isNaN(d.getTime())) return undefined;
  if (endOfDay && /^\d{4}-\d{2}-\d{2}$/.test(s)) d.setUTCDate(d.getUTCDate() + 1);
  return d;
}

export async function evidenceExport(a: EvidenceArgs, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const from = a.from ? parseDate(a.from, false) : undefined;
  const to = a.to ? parseDate(a.to, true) : undefined;
  if (!from || !to || from >= to) {
    err.write('warden evidence export: --from and --to are required dates (YYYY-MM-DD or ISO time), --from before --to\n');
    return 2;
  }
  const formats = (a.format ?? 'html,json,csv').split(',').map((f) => f.trim()) as EvidenceFormat[];
  const unknown = formats.filter((f) => !EVIDENCE_FORMATS.includes(f));
  if (unknown.length > 0) {
    err.write(`warden evidence export: unknown format ${unknown.join(', ')} (html, json, csv)\n`);
    return 2;
  }
  let report: EvidenceReport;
  if (a.databaseUrl) {
    if (!a.publicKey) {
      err.write('warden evidence export: --public-key (the control plane\'s key, PEM) is needed to verify the audit chain and approvals\n');
      return 2;
    }
    const pool = new pg.Pool({ connectionString: a.databaseUrl, max: 2 });
    const tty = (err as NodeJS.WriteStream).isTTY === true;
    let last = 0;
    try {
      report = await collectEvidence(
        {
          pool,
          schema: a.schema,
          publicKey: createPublicKey(fs.readFileSync(a.publicKey, 'utf8')),
          onProgress: (done, total) => {
            // A person at a terminal sees a live counter; logs get a line every 10%.
            const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
            if (tty) err.write(`\rreading the audit log: ${done}/${total} records (${pct}%)`);
            else if (pct >= last + 10 || done === total) err.write(`reading the audit log: ${done}/${total} records (${pct}%)\n`);
            last = pct - (pct % 10);
          },
        },
        { from, to },
      );
      if (tty) err.write('\n');
    } finally {
      await pool.end();
    }
  } else if (typeof a.api === 'object') {
    err.write(`fetching the evidence for ${from.toISOString()} .. ${to.toISOString()} from ${a.api.url}\n`);
    const res = await fetch(`${a.api.url}/v1/evidence?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`, { headers: { authorization: `Bearer ${a.api.token}` } });
    if (res.status !== 200) {
      err.write(`warden evidence export: the control plane answered ${res.status}: ${await res.text()}\n`);
      return 1;
    }
    report = (await res.json()) as EvidenceReport;
  } else {
    err.write(`warden evidence export: give --database-url (with --public-key) or --api with --token${typeof a.api === 'string' ? ` (${a.api})` : ''}\n`);
    return 2;
  }
  const files = writeEvidence(report, formats, a.out ?? '.');
  if (a.json) out.write(JSON.stringify({ files, summary: report.summary, auditChain: report.auditChain }, null, 2) + '\n');
  else {
    const s = report.summary;
    out.write(`evidence ${report.period.from} .. ${report.period.to}: ${s.phiIdentities} identities touched PHI in ${s.phiStatements} statements; ${s.valuesMasked} values masked, ${s.valuesUnmasked} unmasked; ${s.denials} refused; ${s.approvals.total} approvals; audit chain ${report.auditChain.ok ? 'verified' : 'FAILED'}\n`);
    for (const f of files) out.write(`  ${f}\n`);
  }
  return report.auditChain.ok && report.summary.approvals.signaturesInvalid === 0 ? 0 : 1;
}
