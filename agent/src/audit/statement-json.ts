/**
 * A statement event as one JSON line, written field by field. Statements are
 * nearly every line the JSONL recorder writes, and JSON.stringify spent
 * about 18k instructions on each (callgrind, `pgbench -S`): it checks every
 * character of every string one at a time and looks each property up
 * generically. This writes the known fields directly and only escapes a
 * string that needs it (a regular expression finds those in one native
 * scan), about twice as fast per line.
 *
 * The line parses to exactly the event (statement-json.test.ts holds every
 * field to that), and for the PostgreSQL engine's events — fields in the order
 * mask.ts sets them — it is byte for byte what JSON.stringify writes. Rare
 * nested fields (errors, masked columns, HTTP exchanges) go through
 * JSON.stringify; only the hot ones are written here.
 */
import type { StatementEvent } from './events.js';

/** Every field of a statement event, in the order the line has them; the compiler checks none is missing. */
export const STATEMENT_FIELDS = [
  'type', 'sessionId', 'seq', 'at', 'protocol', 'text', 'rows', 'durationMs', 'decision', 'approvalRequestId', 'tag', 'error',
  'ruleIds', 'maskedColumns', 'tables', 'maskedValues', 'returnedValues', 'touchedColumns', 'truncated', 'parameters',
  'resultSha256', 'sample', 'http', 'bundleVersion',
] as const satisfies ReadonlyArray<keyof StatementEvent>;
type Missing = Exclude<keyof StatementEvent, (typeof STATEMENT_FIELDS)[number]>;
// Fails to compile when StatementEvent gains a field this writer does not know.
const everyFieldWritten: [Missing] extends [never] ? true : Missing = true;
void everyFieldWritten;

/** What JSON.stringify escapes: quote, backslash, control characters, and surrogates (lone ones become \uXXXX). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON.stringify writes it; the rare one that needs escaping (or holds a surrogate pair) goes through it. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** Escaped forms of strings every line of a session repeats; cleared when full, so it stays small. */
const repeated = new Map<string, string>();
const REPEATED_MAX = 1024;

/**
 * For strings that recur line after line as the same string (a session's id, the bundle version,
 * enum values): one map lookup instead of a scan. Per-statement strings (text, time, hash, cells)
 * go through jsonString.
 */
function jsonRepeated(s: string): string {
  let out = repeated.get(s);
  if (out === undefined) {
    out = jsonString(s);
    if (repeated.size >= REPEATED_MAX) repeated.clear();
    repeated.set(s, out);
  }
  return out;
}

function jsonNumber(n: number): string {
  return Number.isFinite(n) ? `${n}` : 'null';
}

/**
 * Durations have at most three decimals (mask.ts rounds them to the microsecond). From whole
 * microseconds they print as `${ms}` does without V8 printing a double, which cost about as much
 * as the rest of the line's numbers together; anything else is printed the ordinary way.
 */
export function jsonMillis(ms: number): string {
  const us = Math.round(ms * 1000);
  if (!(us >= 0 && us < 0x7fffffff) || us / 1000 !== ms) return jsonNumber(ms);
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  if (frac === 0) return `${whole}`;
  if (frac % 100 === 0) return `${whole}.${frac / 100}`;
  if (frac % 10 === 0) return `${whole}.${frac < 100 ? '0' : ''}${frac / 10}`;
  return `${whole}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

function stringArray(values: readonly string[]): string {
  let out = '[';
  for (let i = 0; i < values.length; i++) out += (i === 0 ? '' : ',') + jsonString(values[i]!);
  return out + ']';
}

/** Bind parameters: on every extended-protocol statement, so written here too. */
function parametersJson(ps: NonNullable<StatementEvent['parameters']>): string {
  let out = '[';
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    out += `${i === 0 ? '' : ','}{"value":${p.value === null ? 'null' : jsonString(p.value)}${p.masked === undefined ? '' : `,"masked":${p.masked ? 'true' : 'false'}`}}`;
  }
  return out + ']';
}

function sampleJson(s: NonNullable<StatementEvent['sample']>): string {
  let out = `{"columns":${stringArray(s.columns)},"maskedColumns":[`;
  for (let i = 0; i < s.maskedColumns.length; i++) out += (i === 0 ? '' : ',') + jsonNumber(s.maskedColumns[i]!);
  out += '],"rows":[';
  for (let r = 0; r < s.rows.length; r++) {
    const row = s.rows[r]!;
    out += r === 0 ? '[' : ',[';
    for (let i = 0; i < row.length; i++) {
      const cell = row[i];
      out += (i === 0 ? '' : ',') + (cell === null || cell === undefined ? 'null' : jsonString(cell));
    }
    out += ']';
  }
  return `${out}],"truncated":${s.truncated ? 'true' : 'false'}}`;
}

/** The event as one line of JSON (no newline). */
export function statementJson(e: StatementEvent): string {
  let out = `{"type":"statement","sessionId":${jsonRepeated(e.sessionId)},"seq":${jsonNumber(e.seq)},"at":${jsonString(e.at)},"protocol":${jsonRepeated(e.protocol)},"text":${jsonString(e.text)},"rows":${jsonNumber(e.rows)},"durationMs":${jsonMillis(e.durationMs)},"decision":${jsonRepeated(e.decision)}`;
  if (e.approvalRequestId !== undefined) out += `,"approvalRequestId":${jsonString(e.approvalRequestId)}`;
  if (e.tag !== undefined) out += `,"tag":${jsonString(e.tag)}`;
  if (e.error !== undefined) out += `,"error":${JSON.stringify(e.error)}`;
  if (e.ruleIds !== undefined) out += `,"ruleIds":${stringArray(e.ruleIds)}`;
  if (e.maskedColumns !== undefined) out += `,"maskedColumns":${JSON.stringify(e.maskedColumns)}`;
  if (e.tables !== undefined) out += `,"tables":${stringArray(e.tables)}`;
  if (e.maskedValues !== undefined) out += `,"maskedValues":${jsonNumber(e.maskedValues)}`;
  if (e.returnedValues !== undefined) out += `,"returnedValues":${jsonNumber(e.returnedValues)}`;
  if (e.touchedColumns !== undefined) out += `,"touchedColumns":${stringArray(e.touchedColumns)}`;
  if (e.truncated !== undefined) out += `,"truncated":${e.truncated ? 'true' : 'false'}`;
  if (e.parameters !== undefined) out += `,"parameters":${parametersJson(e.parameters)}`;
  if (e.resultSha256 !== undefined) out += `,"resultSha256":${jsonString(e.resultSha256)}`;
  if (e.sample !== undefined) out += `,"sample":${sampleJson(e.sample)}`;
  if (e.http !== undefined) out += `,"http":${JSON.stringify(e.http)}`;
  if (e.bundleVersion !== undefined) out += `,"bundleVersion":${jsonRepeated(e.bundleVersion)}`;
  return `${out}}`;
}
