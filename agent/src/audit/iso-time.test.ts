import { describe, expect, it } from 'vitest';
import { isoAt, isoNow } from './iso-time.js';

describe('isoAt', () => {
  it('writes exactly what Date#toISOString writes, across millisecond, second, day and year boundaries', () => {
    const starts = [0, 999, Date.UTC(2026, 11, 31, 23, 59, 59, 990), Date.UTC(2024, 1, 29, 12, 0, 0, 0), Date.UTC(9999, 11, 31, 23, 59, 59, 995)];
    for (const start of starts) {
      for (let ms = start; ms < start + 30; ms++) expect(isoAt(ms)).toBe(new Date(ms).toISOString());
    }
    // Out of order and repeated, as concurrent sessions call it.
    for (const ms of [1_700_000_000_123, 1_700_000_000_005, 1_700_000_000_005, 1_600_000_000_000, -1, 253402300800000]) {
      expect(isoAt(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('isoNow is the current time', () => {
    const before = Date.now();
    const now = Date.parse(isoNow());
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});
