/**
 * Content detectors for free-text columns (clinical notes, messages, comments):
 * PHI that sits inside a longer text rather than in a column of its own.
 *
 * Detection is pattern based and deliberately errs towards masking too much:
 * a note that loses a harmless number is a small cost, a leaked identifier is
 * not. Labels ("SSN", "MRN") are kept in the output and only the value behind
 * them is replaced, so a reader still sees what kind of data was there.
 *
 * Every built-in pattern is linear in the text length: runs that could start a
 * match only at their beginning are anchored with a look-behind so the engine
 * does not rescan them from every offset.
 */
import { isUtf8 } from 'node:buffer';

export type DetectorName = 'ssn' | 'phone' | 'email' | 'mrn' | 'date';

export const DETECTOR_NAMES: readonly DetectorName[] = ['ssn', 'phone', 'email', 'mrn', 'date'];

export const DEFAULT_PLACEHOLDERS: Readonly<Record<DetectorName, string>> = {
  ssn: '[SSN]',
  phone: '[PHONE]',
  email: '[EMAIL]',
  mrn: '[MRN]',
  date: '[DATE]',
};

export interface DetectorOptions {
  /** Which detectors run; all of them when omitted. */
  detectors?: readonly DetectorName[];
  /**
   * Replaces the built-in MRN patterns. Medical record numbers are
   * site-specific, so a deployment that knows its format should say it. A
   * string is compiled case-sensitively; a RegExp keeps its own flags. The
   * pattern must not be able to backtrack catastrophically: it runs on every
   * value of the column.
   */
  mrnPattern?: RegExp | string;
  /** One text for every match, or per detector; the typed placeholders otherwise. */
  replacement?: string | Partial<Record<DetectorName, string>>;
}

export interface DetectorMatch {
  detector: DetectorName;
  start: number;
  end: number;
}

export interface TextDetector {
  readonly detectors: readonly DetectorName[];
  /** Returns `text` itself (no new string) when nothing matches. */
  maskText(text: string): string;
  /**
   * Returns `value` itself when nothing matches, a new buffer otherwise, and
   * undefined when the bytes are not valid UTF-8: such a value cannot be
   * scanned reliably, so the caller must fail closed.
   */
  maskBuffer(value: Buffer): Buffer | undefined;
  findMatches(text: string): DetectorMatch[];
}

interface Rule {
  name: DetectorName;
  re: RegExp;
  token: string;
  /** A character every match contains; the regex is skipped for texts without it. */
  needs?: string;
}

// ITIN (9xx) and other "invalid" SSN ranges are kept: they are identifiers too.
const SSN_DASHED = String.raw`(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)`;
// Nine bare digits are only an SSN when a label says so; the label stays visible.
const SSN_LABELLED = String.raw`(?<=\b(?:ssn|ss#|social\s+security(?:\s+(?:number|num|no))?)[\s:#.]{0,4})\d{3}([- ]?)\d{2}\1\d{4}(?!\d)`;

// NANP numbers with separators. Bare ten-digit runs are left alone: too many
// other identifiers (order numbers, NPIs) have that shape to call them phones.
const PHONE = String.raw`(?<![\d+])(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?!\d)`;

// Unicode letters are allowed in the local part and labels (RFC 6531/IDN). The
// look-behind makes a match start only where a run of local-part characters begins.
const EMAIL = String.raw`(?<![\p{L}\p{N}_.%+\-])[\p{L}\p{N}_.%+\-]+@(?:[\p{L}\p{N}](?:[\p{L}\p{N}\-]{0,61}[\p{L}\p{N}])?\.)+\p{L}{2,63}(?![\p{L}\p{N}_\-])`;

// Labelled form: "MRN: 00123456", "MR# AB1234567", "Medical record number 1234567".
const MRN_LABELLED = String.raw`(?<=\b(?:mrn|mr#|medical\s+record(?:\s+(?:number|num|no))?)[\s:#.]{0,4})[a-z]{0,3}\d{4,12}(?!\d)`;
// Bare form: 2-3 capitals then 6-8 digits, the common shape of hospital MRNs
// and accession numbers. Kept case-sensitive so ordinary words do not match.
const MRN_BARE = String.raw`\b[A-Z]{2,3}\d{6,8}\b`;

const MONTH = String.raw`(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)`;
const DAY = String.raw`(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?`;
const TIME = String.raw`(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?`;
const DATE = [
  // ISO 8601 (with an optional time, which is as identifying as the date).
  String.raw`(?<!\d)\d{4}([-/])(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])${TIME}(?!\d)`,
  // US month/day/year, two- or four-digit year.
  String.raw`(?<!\d)(?:0?[1-9]|1[0-2])([/-])(?:0?[1-9]|[12]\d|3[01])\2(?:\d{4}|\d{2})(?!\d)`,
  // Day/month/year as written outside the US; four-digit year only, to stay unambiguous.
  String.raw`(?<!\d)(?:0?[1-9]|[12]\d|3[01])([/.-])(?:0?[1-9]|1[0-2])\3\d{4}(?!\d)`,
  // "Jan 31, 2024", "January 31st 2024", "March 2024" (month and year alone are still a date element).
  String.raw`\b${MONTH}\.?\s+(?:${DAY},?\s+)?\d{4}(?!\d)`,
  // "31 January 2024", "1st of March, 2024".
  String.raw`(?<!\d)${DAY}\s+(?:of\s+)?${MONTH}\.?,?\s+\d{4}(?!\d)`,
].join('|');

function builtinPatterns(name: DetectorName): RegExp[] {
  switch (name) {
    case 'ssn':
      return [new RegExp(`${SSN_DASHED}|${SSN_LABELLED}`, 'gi')];
    case 'phone':
      return [new RegExp(PHONE, 'g')];
    case 'email':
      return [new RegExp(EMAIL, 'giu')];
    case 'mrn':
      return [new RegExp(MRN_LABELLED, 'gi'), new RegExp(MRN_BARE, 'g')];
    case 'date':
      return [new RegExp(DATE, 'gi')];
  }
}

function withGlobal(p: RegExp | string): RegExp {
  if (typeof p === 'string') return new RegExp(p, 'g');
  // Sticky would stop the scan at the first non-matching offset.
  const flags = p.flags.replace(/[gy]/g, '');
  return new RegExp(p.source, flags + 'g');
}

function tokenFor(name: DetectorName, r: DetectorOptions['replacement']): string {
  if (typeof r === 'string') return r;
  return r?.[name] ?? DEFAULT_PLACEHOLDERS[name];
}

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const AT = 0x40;

/**
 * Every built-in pattern needs an ASCII digit or an '@'. Looking for those
 * bytes first lets the common case (prose with no numbers) skip decoding.
 */
function mayContainPhi(v: Buffer): boolean {
  for (let i = 0; i < v.length; i++) {
    const b = v[i]!;
    if ((b >= DIGIT_0 && b <= DIGIT_9) || b === AT) return true;
  }
  return false;
}

/** Leftmost match of `re` starting at or after `from`, ignoring empty matches. */
function nextMatch(re: RegExp, text: string, from: number): [number, number] | null {
  let at = from;
  while (at <= text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (m === null) return null;
    if (m[0].length > 0) return [m.index, m.index + m[0].length];
    // A custom pattern matched the empty string; it masks nothing there.
    at = m.index + 1;
  }
  return null;
}

/**
 * Merges the matches of all rules into one non-overlapping, left-to-right
 * sequence: the leftmost match wins, a tie goes to the longer one, then to
 * the earlier rule.
 */
function scan(text: string, rules: readonly Rule[], visit: (rule: Rule, start: number, end: number) => void): void {
  const n = rules.length;
  const starts = new Array<number>(n);
  const ends = new Array<number>(n).fill(-2);
  for (let i = 0; i < n; i++) {
    const needs = rules[i]!.needs;
    starts[i] = needs !== undefined && !text.includes(needs) ? -1 : -2;
  }
  let pos = 0;
  for (;;) {
    let best = -1;
    for (let i = 0; i < n; i++) {
      let s = starts[i]!;
      if (s !== -1 && s < pos) {
        const m = nextMatch(rules[i]!.re, text, pos);
        s = m ? m[0] : -1;
        starts[i] = s;
        ends[i] = m ? m[1] : -1;
      }
      if (s < 0) continue;
      if (best < 0 || s < starts[best]! || (s === starts[best]! && ends[i]! > ends[best]!)) best = i;
    }
    if (best < 0) return;
    const start = starts[best]!;
    const end = ends[best]!;
    visit(rules[best]!, start, end);
    pos = end;
  }
}

export function compileDetectors(options: DetectorOptions = {}): TextDetector {
  const names = options.detectors ?? DETECTOR_NAMES;
  const rules: Rule[] = [];
  for (const name of names) {
    if (!DETECTOR_NAMES.includes(name)) throw new TypeError(`unknown detector: ${String(name)}`);
    if (rules.some((r) => r.name === name)) continue;
    const token = tokenFor(name, options.replacement);
    const patterns =
      name === 'mrn' && options.mrnPattern !== undefined ? [withGlobal(options.mrnPattern)] : builtinPatterns(name);
    for (const re of patterns) {
      const rule: Rule = { name, re, token };
      if (name === 'email') rule.needs = '@';
      rules.push(rule);
    }
  }
  // A custom pattern may match text without digits, so the byte pre-check is only sound for the built-ins.
  const prefilter = !(names.includes('mrn') && options.mrnPattern !== undefined);

  function maskText(text: string): string {
    if (rules.length === 0) return text;
    let out = '';
    let last = 0;
    let matched = false;
    scan(text, rules, (rule, start, end) => {
      out += text.slice(last, start) + rule.token;
      last = end;
      matched = true;
    });
    return matched ? out + text.slice(last) : text;
  }

  return {
    detectors: [...new Set(names)],
    maskText,
    maskBuffer(value: Buffer): Buffer | undefined {
      if (!isUtf8(value)) return undefined;
      if (rules.length === 0 || (prefilter && !mayContainPhi(value))) return value;
      const text = value.toString('utf8');
      const masked = maskText(text);
      return masked === text ? value : Buffer.from(masked, 'utf8');
    },
    findMatches(text: string): DetectorMatch[] {
      const found: DetectorMatch[] = [];
      scan(text, rules, (rule, start, end) => found.push({ detector: rule.name, start, end }));
      return found;
    },
  };
}

// Compiling is the costly part; callers that pass names get a cached compile.
const byNames = new Map<string, TextDetector>();

function resolve(detectors: TextDetector | readonly DetectorName[] | undefined): TextDetector {
  if (detectors === undefined) detectors = DETECTOR_NAMES;
  if (!Array.isArray(detectors)) return detectors as TextDetector;
  const key = [...detectors].sort().join(',');
  let d = byNames.get(key);
  if (d === undefined) {
    d = compileDetectors({ detectors: detectors as readonly DetectorName[] });
    byNames.set(key, d);
  }
  return d;
}

/** Replaces each detected PHI substring by its typed placeholder, e.g. `[SSN]`. */
export function maskText(text: string, detectors?: TextDetector | readonly DetectorName[]): string {
  return resolve(detectors).maskText(text);
}
