/**
 * ISO 8601 timestamps for session records, as `Date#toISOString` writes them, at a fraction of
 * its cost: it formats through printf (thousands of instructions), so here it runs once a second
 * for the "YYYY-MM-DDTHH:MM:SS." prefix and the milliseconds are appended; statements within one
 * millisecond share the string.
 */
let lastMs = Number.NaN;
let lastIso = '';
let secondMs = Number.NaN;
let secondPrefix = '';

/** `ms`: whole milliseconds since the epoch, as Date.now() gives them. */
export function isoAt(ms: number): string {
  if (ms === lastMs) return lastIso;
  // Before 1970 or past year 9999 the plain formatter handles signs and widths.
  if (ms < 0 || ms >= 253402300800000) return new Date(ms).toISOString();
  lastMs = ms;
  const milli = ms % 1000;
  if (ms - milli !== secondMs) {
    secondMs = ms - milli;
    secondPrefix = new Date(secondMs).toISOString().slice(0, 20);
  }
  lastIso = secondPrefix + (milli < 10 ? '00' : milli < 100 ? '0' : '') + milli + 'Z';
  return lastIso;
}

export function isoNow(): string {
  return isoAt(Date.now());
}
