/**
 * Reasoning about "schema.table[.column]" patterns without a database: the
 * semantic checks must decide whether two rules can ever see the same column
 * (intersects) and whether one rule sees everything another does (covers).
 * '*' matches any run of characters within one segment, as in the agent.
 */

/** Whether some string matches both single-segment globs. */
function segmentsIntersect(a: string, b: string): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * (b.length + 1) + j;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    let r: boolean;
    if (i === a.length && j === b.length) r = true;
    else if (a[i] === '*') r = go(i + 1, j) || (j < b.length && go(i, j + 1));
    else if (b[j] === '*') r = go(i, j + 1) || (i < a.length && go(i + 1, j));
    else r = i < a.length && j < b.length && a[i] === b[j] && go(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}

/**
 * Whether every string matching `inner` matches `outer`. `inner`'s stars are
 * treated as characters only `outer`'s stars can absorb, which is exact for
 * star-only globs.
 */
function segmentCovers(outer: string, inner: string): boolean {
  const memo = new Map<number, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = i * (inner.length + 1) + j;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    let r: boolean;
    if (i === outer.length) r = j === inner.length;
    else if (outer[i] === '*') r = go(i + 1, j) || (j < inner.length && go(i, j + 1));
    else r = j < inner.length && inner[j] !== '*' && outer[i] === inner[j] && go(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  return go(0, 0);
}

function split(p: string): string[] {
  return p.split('.');
}

/** Whether two dotted patterns with the same number of segments can match the same name. */
export function patternsIntersect(a: string, b: string): boolean {
  const x = split(a);
  const y = split(b);
  return x.length === y.length && x.every((s, i) => segmentsIntersect(s, y[i]!));
}

/** Whether `outer` matches every name `inner` matches. */
export function patternCovers(outer: string, inner: string): boolean {
  const x = split(outer);
  const y = split(inner);
  return x.length === y.length && x.every((s, i) => segmentCovers(s, y[i]!));
}

/** Same matcher the agent uses, for tests and for checking concrete names. */
export function patternMatches(pattern: string, name: string): boolean {
  return patternCovers(pattern, name);
}

/** Splits "schema.table.column" into its table part and column part. */
export function splitColumnPattern(p: string): { table: string; column: string } {
  const i = p.lastIndexOf('.');
  return { table: p.slice(0, i), column: p.slice(i + 1) };
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** Loopback hosts are the only place plaintext is tolerated by default. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return LOOPBACK.has(h) || h.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Milliseconds of a duration such as "90s", "5m", "1h30m", "2d"; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!m || text === '') return undefined;
  const [, d, h, min, s] = m;
  return ((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(min ?? 0)) * 60_000 + Number(s ?? 0) * 1000;
}

/** Minutes after midnight of "HH:MM". */
export function parseClock(text: string): number | undefined {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Whether a regular expression is in the subset RE2 (the agent's engine for custom detectors) accepts. */
export function re2Problem(source: string): string | undefined {
  try {
    new RegExp(source);
  } catch (err) {
    return (err as Error).message;
  }
  if (/\(\?<?[=!]/.test(source)) return 'lookaround assertions are not supported by RE2';
  if (/\\[1-9]|\\k</.test(source)) return 'backreferences are not supported by RE2';
  return undefined;
}
