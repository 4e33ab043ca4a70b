import { describe, expect, it } from 'vitest';
import { jsonMillis, jsonString, STATEMENT_FIELDS, statementJson } from './statement-json.js';
import type { StatementEvent } from './events.js';
import { full, http, minimal } from '../../../test/support/statement-events.js';

/** The event with its fields set in the writer's order (as the PostgreSQL engine sets them). */
function inWriterOrder(e: StatementEvent): StatementEvent {
  const out: Record<string, unknown> = {};
  for (const k of STATEMENT_FIELDS) if (e[k] !== undefined) out[k] = e[k];
  return out as unknown as StatementEvent;
}

describe('statementJson', () => {
  it('the full fixture sets every field the writer knows', () => {
    for (const k of STATEMENT_FIELDS) expect(full[k], k).toBeDefined();
    expect(Object.keys(full).sort()).toEqual([...STATEMENT_FIELDS].sort());
  });

  it('writes a line that parses to the event, for minimal, full and HTTP statements in any field order', () => {
    for (const e of [minimal, full, http, { ...http, bundleVersion: undefined }]) {
      expect(JSON.parse(statementJson(e))).toEqual(JSON.parse(JSON.stringify(e)));
    }
  });

  it('writes the bytes JSON.stringify writes when the fields were set in its order', () => {
    for (const e of [minimal, full, http]) {
      const ordered = inWriterOrder(e);
      expect(statementJson(ordered)).toBe(JSON.stringify(ordered));
    }
  });

  it('escapes strings exactly as JSON.stringify does, surrogates and control characters included', () => {
    const cases = [
      '', 'plain', 'quote " and backslash \\', 'new\nline\ttab\r', '\u0000\u0001\u001f', '\u007f not escaped', 'line sep \u2028 \u2029',
      'lone high \ud800 end', 'lone low \udc00', 'pair 😀 é ü', '\ud83d', 'a'.repeat(10_000) + '"',
    ];
    for (const s of cases) expect(jsonString(s), JSON.stringify(s)).toBe(JSON.stringify(s));
    const e = inWriterOrder({
      ...full, text: cases.join('|'), tag: 'SELECT "1"', sessionId: 'x\\y',
      sample: { columns: ['a"b', '\n'], maskedColumns: [], rows: [cases, [null, '\ud800']], truncated: false },
    });
    expect(statementJson(e)).toBe(JSON.stringify(e));
  });

  it('writes numbers as JSON.stringify does, non-finite ones as null', () => {
    for (const durationMs of [0, -0, 0.1 + 0.2, 1e21, 5e-7, Number.NaN, Number.POSITIVE_INFINITY]) {
      const e = inWriterOrder({ ...minimal, durationMs, rows: 2 ** 53 + 2, seq: 3 });
      expect(statementJson(e)).toBe(JSON.stringify(e));
    }
  });

  it('prints durations of up to three decimals as `${ms}` does, for every microsecond up to 2,000 s', () => {
    const wrong: number[] = [];
    for (let us = 0; us <= 2_000_000_000; us += us < 2_000_000 ? 1 : 997) {
      const ms = Math.round(us) / 1000;
      if (jsonMillis(ms) !== `${ms}`) wrong.push(ms);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    for (const ms of [0.0005, 1 / 3, 1e-7, 2.5e9, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(jsonMillis(ms)).toBe(JSON.stringify(ms));
  });
});
