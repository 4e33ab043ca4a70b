/**
 * Sessions for people: a list as a table, and a replay that shows each
 * statement as the client saw it (masked sample rows, errors, the row
 * count and the result hash), in text for a terminal or HTML for a report.
 * Replay keeps the session's own rhythm: each statement is shown when it
 * happened, divided by a speed factor, or all at once.
 */
import type { ReplayStatement, ReplayValue, SessionReplay, SessionSummary } from './session-query.js';

const cell = (v: ReplayValue): string => (v.value === null ? 'NULL' : v.value) + (v.masked ? '*' : '');

/** psql-style aligned table. */
function table(columns: string[], rows: string[][]): string[] {
  const width = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => ' ' + r.map((v, i) => v.padEnd(width[i]!)).join(' | ');
  return [line(columns), '-' + width.map((w) => '-'.repeat(w)).join('-+-') + '-', ...rows.map(line)];
}

export function renderSessionList(sessions: SessionSummary[]): string {
  if (sessions.length === 0) return 'no sessions match\n';
  const rows = sessions.map((s) => [
    s.sessionId,
    s.startedAt,
    s.subject,
    s.role ?? (s.refused ? `refused ${s.refused.sqlstate}` : ''),
    s.target ?? '',
    String(s.statements),
    Object.entries(s.decisions).map(([d, n]) => `${d}:${n}`).join(' '),
    s.endReason ?? (s.refused ? 'auth_refused' : 'open'),
  ]);
  return table(['session', 'started', 'subject', 'role', 'target', 'stmts', 'decisions', 'ended'], rows).join('\n') + `\n(${sessions.length} session${sessions.length === 1 ? '' : 's'})\n`;
}

export function renderSessionHeader(s: SessionSummary): string {
  const who = `${s.subject}${s.role ? ` as ${s.role}` : ''}${s.groups.length ? ` [${s.groups.join(', ')}]` : ''}`;
  const lines = [`session ${s.sessionId}: ${who}`, `  agent ${s.agentId}${s.target ? ` → ${s.target}` : ''}${s.clientAddress ? `, client ${s.clientAddress}` : ''}, started ${s.startedAt}`];
  if (s.refused) lines.push(`  login refused: ${s.refused.sqlstate} ${s.refused.reason}`);
  return lines.join('\n') + '\n';
}

export function renderStatement(st: ReplayStatement): string {
  const out = [`[+${(st.offsetMs / 1000).toFixed(3)}s] ${st.text}`];
  out.push(`  decision: ${st.decision}${st.ruleIds.length ? ` (${st.ruleIds.join(', ')})` : ''}${st.maskedColumns.length ? `; masked ${st.maskedColumns.join(', ')}` : ''}`);
  if (st.parameters.length > 0) out.push(`  parameters: ${st.parameters.map((p, i) => `$${i + 1}=${cell(p)}`).join('  ')}`);
  if (st.sample && (st.sample.columns.length > 0 || st.sample.rows.length > 0)) {
    const columns = st.sample.columns.length > 0 ? st.sample.columns : (st.sample.rows[0] ?? []).map((_, i) => `column${i + 1}`);
    out.push(...table(columns, st.sample.rows.map((r) => r.map(cell))).map((l) => '  ' + l));
  }
  if (st.error) out.push(`  ERROR ${st.error.sqlstate}: ${st.error.message}`);
  else {
    const shown = st.sample ? `, ${st.sample.rows.length} shown` : '';
    const tag = st.commandTag ? `${st.commandTag} ` : '';
    out.push(`  ${tag}(${st.rowCount} row${st.rowCount === 1 ? '' : 's'}${shown}${st.truncated ? ', cut at the row limit' : ''}; ${st.durationMs.toFixed(3)} ms${st.resultSha256 ? `; sha256 ${st.resultSha256}` : ''})`);
  }
  return out.join('\n') + '\n';
}

export function renderSessionFooter(s: SessionSummary): string {
  return `session ${s.endReason ? `ended (${s.endReason}) at ${s.endedAt ?? '?'}` : 'still open or its end was not recorded'}: ${s.statements} statement${s.statements === 1 ? '' : 's'}; values marked * were masked\n`;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderReplayHtml(r: SessionReplay): string {
  const s = r.session;
  const stmt = (st: ReplayStatement): string => {
    const sample = st.sample
      ? `<table><thead><tr>${st.sample.columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>${st.sample.rows
          .map((row) => `<tr>${row.map((v) => `<td class="${v.masked ? 'masked' : ''}">${v.value === null ? '<i>NULL</i>' : esc(v.value)}</td>`).join('')}</tr>`)
          .join('')}</tbody></table>`
      : '';
    const params = st.parameters.length ? `<p>parameters: ${st.parameters.map((p, i) => `<code class="${p.masked ? 'masked' : ''}">$${i + 1}=${esc(p.value ?? 'NULL')}</code>`).join(' ')}</p>` : '';
    const result = st.error
      ? `<p class="error">ERROR ${esc(st.error.sqlstate)}: ${esc(st.error.message)}</p>`
      : `<p>${esc(st.commandTag ?? '')} — ${st.rowCount} rows${st.truncated ? ' (cut at the row limit)' : ''}; ${st.durationMs} ms${st.resultSha256 ? `; sha256 <code>${st.resultSha256}</code>` : ''}</p>`;
    return `<section><h3>+${(st.offsetMs / 1000).toFixed(3)} s · ${esc(st.decision)}</h3><pre>${esc(st.text)}</pre>${params}${sample}${result}</section>`;
  };
  return `<!doctype html><html><head><meta charset="utf-8"><title>Session ${esc(s.sessionId)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}.masked{background:#fff3c4}.error{color:#b00}pre{background:#f4f4f4;padding:6px}</style></head>
<body><h1>Session ${esc(s.sessionId)}</h1><p>${esc(s.subject)}${s.role ? ` as ${esc(s.role)}` : ''} · agent ${esc(s.agentId)}${s.target ? ` → ${esc(s.target)}` : ''} · started ${esc(s.startedAt)}${s.endReason ? ` · ended ${esc(s.endReason)} at ${esc(s.endedAt ?? '')}` : ''}</p>
<p>Highlighted values were masked before the client received them.</p>
${r.statements.map(stmt).join('\n')}</body></html>
`;
}

/**
 * Writes the replay, waiting between statements as the session did (divided by `speed`),
 * or not at all when `speed` is Infinity.
 */
export async function replaySession(r: SessionReplay, speed: number, write: (s: string) => void, sleep = (ms: number) => new Promise((res) => setTimeout(res, ms))): Promise<void> {
  write(renderSessionHeader(r.session));
  let shownAt = 0;
  for (const st of r.statements) {
    const wait = (st.offsetMs - shownAt) / speed;
    if (Number.isFinite(wait) && wait > 0) await sleep(wait);
    shownAt = Math.max(shownAt, st.offsetMs);
    write(renderStatement(st));
  }
  for (const t of r.terminals) {
    const events = t.cast.split('\n').filter(Boolean).length - 1;
    write(`terminal on channel ${t.channel}: asciicast v2, ${events} events (warden sessions replay ${r.session.sessionId} --cast ${t.channel} > session.cast; asciinema play session.cast)\n`);
  }
  write(renderSessionFooter(r.session));
}
