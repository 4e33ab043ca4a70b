/**
 * Renders diagnostics for people (text), for GitHub Actions (workflow
 * commands, which show up as annotations on the pull request diff) and for
 * tools (json).
 */
import type { Diagnostic } from './types.js';

export type DiagnosticFormat = 'text' | 'github' | 'json';

// Workflow command escaping, as the Actions runner decodes it.
function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

function location(d: Diagnostic): string {
  if (d.file === '') return '(repository)';
  return d.line === undefined ? d.file : `${d.file}:${d.line}`;
}

function githubLine(d: Diagnostic): string {
  const props = [
    ...(d.file ? [`file=${escapeProperty(d.file)}`] : []),
    ...(d.file && d.line !== undefined ? [`line=${d.line}`] : []),
    `title=${escapeProperty(d.code)}`,
  ];
  const message = d.path ? `${d.path}: ${d.message}` : d.message;
  return `::${d.severity} ${props.join(',')}::${escapeData(message)}`;
}

export function formatDiagnostics(diags: readonly Diagnostic[], format: DiagnosticFormat): string {
  switch (format) {
    case 'json':
      return JSON.stringify(diags, null, 2);
    case 'github':
      return diags.map(githubLine).join('\n');
    case 'text': {
      const lines = diags.map((d) => `${location(d)}: ${d.severity} [${d.code}] ${d.path ? `${d.path}: ` : ''}${d.message}`);
      const errors = diags.filter((d) => d.severity === 'error').length;
      const warnings = diags.length - errors;
      lines.push(`${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`);
      return lines.join('\n');
    }
  }
}
