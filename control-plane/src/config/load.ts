/**
 * Reads the config repository into documents. Parsing never throws on bad
 * content: a syntax error becomes a problem attached to a placeholder
 * document, so one broken file is reported alongside every other problem
 * in the repository instead of hiding them.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { ConfigDocument, Diagnostic, PathSegment } from './types.js';

const ENVELOPE_KEYS = new Set(['apiVersion', 'kind', 'spec']);

/** Whether a repository path is config: a .yaml/.yml file outside hidden folders. */
export function isConfigPath(file: string): boolean {
  const parts = file.split(/[\\/]/).filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p.startsWith('.'))) return false;
  return /\.ya?ml$/i.test(parts[parts.length - 1] ?? '');
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** Line of the node at `segments` (of a map key when the last step is a key), else of its deepest ancestor. */
function locate(doc: Document, lines: LineCounter, segments: readonly PathSegment[]): number | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined = rangeStart(node);
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      offset = rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? undefined : lines.linePos(offset).line;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
  return range ? range[0] : undefined;
}

function placeholder(file: string, index: number, line: number, problems: Diagnostic[]): ConfigDocument {
  return { apiVersion: '', kind: '', spec: undefined, file, index, line, problems };
}

/**
 * Parses one file's text. `file` is the repository-relative path used in
 * diagnostics. Empty documents (a trailing `---`, a comment-only file) are skipped.
 */
export function parseConfigText(text: string, file: string): ConfigDocument[] {
  const lines = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const out: ConfigDocument[] = [];
  if ('empty' in parsed) {
    const problems = parsed.errors.map((e): Diagnostic => ({
      severity: 'error', file, line: lines.linePos(e.pos[0]).line, path: '', code: 'yaml-syntax', message: firstLine(e.message),
    }));
    return problems.length > 0 ? [placeholder(file, 0, problems[0]?.line ?? 1, problems)] : [];
  }
  parsed.forEach((doc, index) => {
    const line = lines.linePos(rangeStart(doc.contents) ?? doc.range[0]).line;
    const at = (offset: number): number => lines.linePos(offset).line;
    const syntax: Diagnostic[] = doc.errors.map((e) => ({
      severity: 'error', file, line: at(e.pos[0]), path: '', code: 'yaml-syntax', message: firstLine(e.message),
    }));
    const warnings: Diagnostic[] = doc.warnings.map((e) => ({
      severity: 'warning', file, line: at(e.pos[0]), path: '', code: 'yaml-warning', message: firstLine(e.message),
    }));
    if (syntax.length > 0) {
      out.push(placeholder(file, index, syntax[0]?.line ?? line, [...syntax, ...warnings]));
      return;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return;
    const lineAt = (segments: readonly PathSegment[]) => locate(doc, lines, segments);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // Alias bombs and similar: report instead of expanding.
      out.push(placeholder(file, index, line, [{ severity: 'error', file, line, path: '', code: 'yaml-syntax', message: firstLine((err as Error).message) }]));
      return;
    }
    const problems: Diagnostic[] = [...warnings];
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      problems.push({ severity: 'error', file, line, path: '', code: 'document-shape', message: 'a document must be a mapping with apiVersion, kind and spec' });
      out.push({ ...placeholder(file, index, line, problems), lineAt });
      return;
    }
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (!ENVELOPE_KEYS.has(key)) {
        problems.push({
          severity: 'error', file, line: lineAt([key]) ?? line, path: key, code: 'unknown-field',
          message: `unknown top-level field "${key}"; a document has only apiVersion, kind and spec`,
        });
      }
    }
    const field = (key: 'apiVersion' | 'kind'): string => {
      const v = record[key];
      if (typeof v === 'string') return v;
      problems.push({
        severity: 'error', file, line: lineAt([key]) ?? line, path: key, code: v === undefined ? 'missing-field' : 'invalid-value',
        message: v === undefined ? `missing required field "${key}"` : `${key} must be a string`,
      });
      return '';
    };
    const apiVersion = field('apiVersion');
    const kind = field('kind');
    if (!('spec' in record)) {
      problems.push({ severity: 'error', file, line, path: 'spec', code: 'missing-field', message: 'missing required field "spec"' });
    }
    out.push({ apiVersion, kind, spec: record.spec, file, index, line, lineAt, ...(problems.length > 0 ? { problems } : {}) });
  });
  return out;
}

/**
 * Parses files given by content, e.g. read from a git commit. Keys are
 * repository-relative paths; files that are not config (see isConfigPath)
 * are ignored, and files are taken in path order so output is deterministic.
 */
export function loadConfigFiles(files: Record<string, string>): ConfigDocument[] {
  return Object.entries(files)
    .map(([f, text]): [string, string] => [f.replace(/\\/g, '/').replace(/^\.\//, ''), text])
    .filter(([f]) => isConfigPath(f))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .flatMap(([f, text]) => parseConfigText(text, f));
}

async function walk(root: string, rel: string, out: string[]): Promise<void> {
  const entries = await readdir(path.join(root, rel), { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const child = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) await walk(root, child, out);
    else if (e.isFile() && isConfigPath(child)) out.push(child);
  }
}

/** Reads every *.yaml / *.yml file under `dir` (hidden files and folders skipped); paths in documents are relative to `dir`. */
export async function loadConfigDir(dir: string): Promise<ConfigDocument[]> {
  const files: string[] = [];
  await walk(dir, '', files);
  files.sort();
  const texts = await Promise.all(files.map((f) => readFile(path.join(dir, f), 'utf8')));
  return files.flatMap((f, i) => parseConfigText(texts[i] ?? '', f));
}
