/** Writes an evidence report to a directory in the formats asked for. */
import fs from 'node:fs';
import path from 'node:path';
import type { EvidenceReport } from './report.js';
import { renderEvidenceHtml } from './render-html.js';
import { renderEvidenceCsv } from './render-csv.js';

export const EVIDENCE_FORMATS = ['html', 'json', 'csv'] as const;
export type EvidenceFormat = (typeof EVIDENCE_FORMATS)[number];

export function writeEvidence(report: EvidenceReport, formats: readonly EvidenceFormat[], outDir: string): string[] {
  fs.mkdirSync(outDir, { recursive: true });
  // Named by the days covered: the period's end is exclusive.
  const stem = `evidence-${report.period.from.slice(0, 10)}-${new Date(Date.parse(report.period.to) - 1).toISOString().slice(0, 10)}`;
  const written: string[] = [];
  const write = (name: string, text: string): void => {
    const file = path.join(outDir, name);
    fs.writeFileSync(file, text);
    written.push(file);
  };
  if (formats.includes('json')) write(`${stem}.json`, JSON.stringify(report, null, 2) + '\n');
  if (formats.includes('html')) write(`${stem}.html`, renderEvidenceHtml(report));
  if (formats.includes('csv')) for (const [name, text] of Object.entries(renderEvidenceCsv(report))) write(`${stem}-${name}`, text);
  return written;
}
