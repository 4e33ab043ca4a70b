import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
/** Benchmark reports: a text table for the terminal and a self-contained HTML page. */

export interface ReportRow {
  name: string;
  value: string;
  note?: string;
}

/** The q-quantile (0..1) of a sample, nearest rank. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export interface ReportSection {
  title: string;
  rows: ReportRow[];
}

export function renderText(title: string, sections: ReportSection[]): string {
  const lines = [title, '='.repeat(title.length)];
  for (const s of sections) {
    lines.push('', s.title);
    const width = Math.max(...s.rows.map((r) => r.name.length));
    for (const r of s.rows) lines.push(`  ${r.name.padEnd(width)}  ${r.value}${r.note ? `   (${r.note})` : ''}`);
  }
  return lines.join('\n') + '\n';
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function renderHtml(title: string, sections: ReportSection[], meta: Record<string, string>): string {
  const body = sections
    .map(
      (s) => `<h2>${escape(s.title)}</h2><table><thead><tr><th>measure</th><th>value</th><th>note</th></tr></thead><tbody>${s.rows
        .map((r) => `<tr><td>${escape(r.name)}</td><td class="num">${escape(r.value)}</td><td>${escape(r.note ?? '')}</td></tr>`)
        .join('')}</tbody></table>`,
    )
    .join('\n');
  const metaRows = Object.entries(meta)
    .map(([k, v]) => `<tr><td>${escape(k)}</td><td>${escape(v)}</td></tr>`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2rem;max-width:60rem}table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums}
@media print{body{margin:0}}</style></head><body><h1>${escape(title)}</h1><table>${metaRows}</table>${body}</body></html>\n`;
}

/** Prints the report and writes bench/out/<name>.{txt,html,json} (the JSON keeps the raw results). */
export function writeReports(name: string, title: string, sections: ReportSection[], results: unknown, log: (s: string) => void): void {
  const outDir = path.resolve('bench/out');
  fs.mkdirSync(outDir, { recursive: true });
  const meta = { date: new Date().toISOString(), host: `${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}`, node: process.version };
  const text = renderText(title, sections);
  process.stdout.write(text);
  fs.writeFileSync(path.join(outDir, `${name}.txt`), text);
  fs.writeFileSync(path.join(outDir, `${name}.html`), renderHtml(title, sections, meta));
  fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify({ meta, results }, null, 2));
  log(`reports in ${outDir}/${name}.{txt,html,json}`);
}
