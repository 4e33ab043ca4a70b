/**
 * The evidence report as one self-contained HTML file: a summary first,
 * then tables, and a chart of PHI access over time (inline SVG, no
 * scripts, no external assets), laid out to print. Every number carries a
 * `data-k` naming its place in the JSON document, so a test (or an auditor's
 * tool) can check the page against the data.
 */
import type { EvidenceReport } from './report.js';

const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const num = (k: string, v: number): string => `<span data-k="${esc(k)}">${v.toLocaleString('en-US')}</span>`;

function table(head: string[], rows: string[][], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${esc(empty)}</p>`;
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

/** Bars of PHI statements per day, with the day under each bar. */
function chart(points: EvidenceReport['accessOverTime']): string {
  if (points.length === 0) return '<p class="empty">No PHI access in this period.</p>';
  const w = 720;
  const h = 180;
  const pad = 28;
  const max = Math.max(...points.map((p) => p.phiStatements), 1);
  const bw = Math.max(4, Math.min(48, (w - 2 * pad) / points.length - 4));
  const bars = points
    .map((p, i) => {
      const x = pad + i * ((w - 2 * pad) / points.length);
      const bh = ((h - 2 * pad) * p.phiStatements) / max;
      return `<g><rect x="${x.toFixed(1)}" y="${(h - pad - bh).toFixed(1)}" width="${bw.toFixed(1)}" height="${bh.toFixed(1)}" fill="#2f6f9f"><title>${esc(p.day)}: ${p.phiStatements} PHI statements, ${p.valuesReturned} values</title></rect>
<text x="${(x + bw / 2).toFixed(1)}" y="${h - pad + 14}" font-size="10" text-anchor="middle">${esc(p.day.slice(5))}</text>
<text x="${(x + bw / 2).toFixed(1)}" y="${(h - pad - bh - 3).toFixed(1)}" font-size="10" text-anchor="middle" data-k="accessOverTime.${i}.phiStatements">${p.phiStatements}</text></g>`;
    })
    .join('\n');
  return `<svg role="img" aria-label="PHI statements per day" viewBox="0 0 ${w} ${h}" width="100%" style="max-width:${w}px"><line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#888"/>${bars}</svg>`;
}

export function renderEvidenceHtml(r: EvidenceReport): string {
  const s = r.summary;
  const a = s.approvals;
  const chainLine = r.auditChain.ok
    ? `<span class="ok" data-k="auditChain.ok">verified</span>: ${num('auditChain.records', r.auditChain.records)} records, ${num('auditChain.checkpointsVerified', r.auditChain.checkpointsVerified)} signed checkpoints${r.auditChain.latestCheckpoint ? ` (latest: #${r.auditChain.latestCheckpoint.id} covering ${r.auditChain.latestCheckpoint.size} records, signed ${esc(r.auditChain.latestCheckpoint.signedAt)} by key ${esc(r.auditChain.latestCheckpoint.keyId)})` : ''}`
    : `<span class="bad" data-k="auditChain.ok">FAILED</span> at record ${r.auditChain.problem?.seq}: ${esc(r.auditChain.problem?.kind)} — ${esc(r.auditChain.problem?.detail)}`;
  const cards: Array<[string, string, number]> = [
    ['Identities that touched PHI', 'summary.phiIdentities', s.phiIdentities],
    ['Sessions', 'summary.sessions', s.sessions],
    ['Statements', 'summary.statements', s.statements],
    ['Statements touching PHI', 'summary.phiStatements', s.phiStatements],
    ['Values returned masked', 'summary.valuesMasked', s.valuesMasked],
    ['Values returned unmasked', 'summary.valuesUnmasked', s.valuesUnmasked],
    ['Statements refused', 'summary.denials', s.denials],
    ['Logins refused', 'summary.refusedLogins', s.refusedLogins],
    ['Approval requests', 'summary.approvals.total', a.total],
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Warden evidence report ${esc(r.period.from.slice(0, 10))} – ${esc(r.period.to.slice(0, 10))}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#1b1b1b;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#555}.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:.6rem;margin:1rem 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem}.card b{display:block;font-size:1.5rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:12.5px}th,td{border:1px solid #ddd;padding:.25rem .4rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}.ok{color:#1a7f37;font-weight:600}.bad{color:#c62828;font-weight:600}.empty{color:#777;font-style:italic}code{font-size:12px}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}table{page-break-inside:auto}tr{page-break-inside:avoid}.card{break-inside:avoid}}
</style></head><body>
<h1>Warden evidence report</h1>
<p class="meta">Period <b>${esc(r.period.from)}</b> to <b>${esc(r.period.to)}</b> · generated ${esc(r.generatedAt)} · schema ${esc(r.schema)}</p>
<h2>Summary</h2>
<div class="cards">${cards.map(([label, k, v]) => `<div class="card"><b>${num(k, v)}</b>${esc(label)}</div>`).join('')}</div>
<p>Audit chain: ${chainLine}.</p>
<p>Approvals: ${num('summary.approvals.approved', a.approved)} approved, ${num('summary.approvals.denied', a.denied)} denied, ${num('summary.approvals.expired', a.expired)} expired, ${num('summary.approvals.withdrawn', a.withdrawn)} withdrawn, ${num('summary.approvals.pending', a.pending)} pending; signatures ${num('summary.approvals.signaturesValid', a.signaturesValid)} valid, ${num('summary.approvals.signaturesInvalid', a.signaturesInvalid)} invalid.</p>
<h2>PHI access over time</h2>
${chart(r.accessOverTime)}
<h2>Identities and what they touched</h2>
${table(
  ['Identity', 'Roles', 'Sessions', 'Statements', 'PHI statements', 'Values masked', 'Values unmasked', 'Refused', 'Approved', 'Tables', 'PHI columns'],
  r.identities.map((i, n) => [
    `${esc(i.subject)}<br><small>${esc(i.issuer)}</small>`,
    esc(i.roles.join(', ')),
    num(`identities.${n}.sessions`, i.sessions),
    num(`identities.${n}.statements`, i.statements),
    num(`identities.${n}.phiStatements`, i.phiStatements),
    num(`identities.${n}.valuesMasked`, i.valuesMasked),
    num(`identities.${n}.valuesUnmasked`, i.valuesUnmasked),
    num(`identities.${n}.denials`, i.denials),
    num(`identities.${n}.approvedStatements`, i.approvedStatements),
    esc(i.tables.join(', ')),
    i.columns.filter((c) => c.phi).map((c) => `<code>${esc(c.column)}</code> (${c.reads} read${c.writes ? `, ${c.writes} written` : ''})`).join('<br>'),
  ]),
  'No sessions in this period.',
)}
<h2>Refused statements</h2>
${table(['When', 'Identity', 'Statement', 'Rules', 'Message'], r.denials.map((d) => [esc(d.at), esc(d.subject), `<code>${esc(d.statement)}</code>`, esc(d.ruleIds.join(', ')), esc(d.message)]), 'No statement was refused in this period.')}
<h2>Approvals</h2>
${table(
  ['Request', 'State', 'Rule', 'Requester', 'Approvers', 'Decided', 'Signature'],
  r.approvals.map((x) => [`<code>${esc(x.id)}</code>`, esc(x.state), esc(x.ruleId), esc(x.requester), x.approvers.map((v) => `${esc(v.vote)} ${esc(v.subject)} ${esc(v.at)}${v.comment ? ` — ${esc(v.comment)}` : ''}`).join('<br>'), esc(x.decidedAt ?? ''), x.signature === 'valid' ? '<span class="ok">valid</span>' : x.signature === 'invalid' ? '<span class="bad">INVALID</span>' : 'none (pending)']),
  'No approval requests in this period.',
)}
<h2>Policy versions in force</h2>
${table(['Commit', 'Author', 'Message', 'Committed', 'Applied', 'Enforced by agents'], r.policyVersions.map((p) => [`<code>${esc(p.version.slice(0, 12))}</code>`, esc(p.author), esc(p.message), esc(p.committedAt), esc(p.appliedAt ?? ''), esc(p.agents.join(', ') || '—')]), 'No policy version recorded.')}
<h2>Sessions</h2>
${table(['Session', 'Identity', 'Role', 'Target', 'Agent', 'Client', 'Policy', 'Started', 'Ended', 'Statements'], r.sessions.map((x) => [`<code>${esc(x.id)}</code>`, esc(x.subject), esc(x.role), esc(x.target), `<code>${esc(x.agentId.slice(0, 8))}</code>`, esc(x.clientAddress), `<code>${esc(x.bundleVersion.slice(0, 12))}</code>`, esc(x.startedAt), esc(`${x.endedAt ?? ''} ${x.endReason ?? ''}`), String(x.statements)]), 'No sessions in this period.')}
</body></html>
`;
}
