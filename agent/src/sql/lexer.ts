/**
 * A single-pass SQL lexer that produces the cache key of a statement:
 * comments dropped, whitespace collapsed, literals replaced by `?`.
 * Statements that differ only in literal values share one analysis and one
 * decision, so the real parser runs once per statement shape, not once per
 * statement. Identifiers (quoted or not) and positional parameters stay as
 * they are: `ssn` and `zip` must never share a key.
 *
 * Linear, no regular expressions, no backtracking. Unterminated strings or
 * comments throw: the caller refuses what it cannot read (fail closed).
 */

export class LexError extends Error {}

const isSpace = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13 || c === 12 || c === 11;
const isDigit = (c: number): boolean => c >= 48 && c <= 57;
/** Characters that may continue an identifier (ASCII letters, digits, _, $, and any non-ASCII). */
const isIdent = (c: number): boolean =>
  (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || isDigit(c) || c === 95 || c === 36 || c >= 128;

const OPERATOR_CHARS = '+-*/<>=~!@#%^&|`';
/** 1: part of a word (identifier, placeholder, quoted name); 2: operator character; 0: punctuation. */
function charClass(c: number): number {
  if (isIdent(c) || c === 63 /* ? */ || c === 34 /* " */) return 1;
  return OPERATOR_CHARS.includes(String.fromCharCode(c)) ? 2 : 0;
}

export interface Normalized {
  key: string;
  literals: number;
}

export function normalizeSql(sql: string): Normalized {
  const n = sql.length;
  let out = '';
  let literals = 0;
  let i = 0;
  let pendingSpace = false;
  // Whitespace matters only where it separates two words or two operator characters
  // ("a b", "+ -"); elsewhere it is dropped so "id = 1" and "id=1" share a key.
  const emit = (s: string): void => {
    if (pendingSpace && out.length > 0) {
      const a = charClass(out.charCodeAt(out.length - 1));
      if (a !== 0 && a === charClass(s.charCodeAt(0))) out += ' ';
    }
    pendingSpace = false;
    out += s;
  };

  /** Ends a '...' string starting after the opening quote; `backslash` for E'' strings. */
  const skipQuoted = (from: number, backslash: boolean): number => {
    let j = from;
    for (;;) {
      if (j >= n) throw new LexError('unterminated quoted string');
      const c = sql.charCodeAt(j);
      if (backslash && c === 92) {
        j += 2;
        continue;
      }
      if (c === 39) {
        if (sql.charCodeAt(j + 1) === 39) {
          j += 2;
          continue;
        }
        return j + 1;
      }
      j++;
    }
  };

  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      pendingSpace = true;
      i++;
      continue;
    }
    // -- comment
    if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      while (i < n && sql.charCodeAt(i) !== 10) i++;
      pendingSpace = true;
      continue;
    }
    // /* nested */ comment
    if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      let depth = 1;
      i += 2;
      while (depth > 0) {
        if (i >= n) throw new LexError('unterminated comment');
        const d = sql.charCodeAt(i);
        if (d === 47 && sql.charCodeAt(i + 1) === 42) {
          depth++;
          i += 2;
        } else if (d === 42 && sql.charCodeAt(i + 1) === 47) {
          depth--;
          i += 2;
        } else i++;
      }
      pendingSpace = true;
      continue;
    }
    // 'string'
    if (c === 39) {
      i = skipQuoted(i + 1, false);
      literals++;
      emit('?');
      continue;
    }
    // E'', B'', X'', N'' and U&'' strings
    const lower = c | 0x20;
    if ((lower === 101 || lower === 98 || lower === 120 || lower === 110) && sql.charCodeAt(i + 1) === 39 && !(i > 0 && isIdent(sql.charCodeAt(i - 1)))) {
      i = skipQuoted(i + 2, lower === 101);
      literals++;
      emit('?');
      continue;
    }
    if (lower === 117 && sql.charCodeAt(i + 1) === 38 && sql.charCodeAt(i + 2) === 39 && !(i > 0 && isIdent(sql.charCodeAt(i - 1)))) {
      i = skipQuoted(i + 3, false);
      literals++;
      emit('?');
      continue;
    }
    // "quoted identifier": kept whole, it names something
    if (c === 34 || (lower === 117 && sql.charCodeAt(i + 1) === 38 && sql.charCodeAt(i + 2) === 34)) {
      let j = c === 34 ? i + 1 : i + 3;
      for (;;) {
        if (j >= n) throw new LexError('unterminated quoted identifier');
        if (sql.charCodeAt(j) === 34) {
          if (sql.charCodeAt(j + 1) === 34) {
            j += 2;
            continue;
          }
          j++;
          break;
        }
        j++;
      }
      emit(sql.slice(i, j));
      i = j;
      continue;
    }
    // $tag$ dollar-quoted string $tag$, or $1 parameter
    if (c === 36) {
      if (isDigit(sql.charCodeAt(i + 1))) {
        let j = i + 1;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
        emit(sql.slice(i, j));
        i = j;
        continue;
      }
      let j = i + 1;
      while (j < n && isIdent(sql.charCodeAt(j)) && sql.charCodeAt(j) !== 36) j++;
      if (sql.charCodeAt(j) === 36) {
        const tag = sql.slice(i, j + 1);
        const end = sql.indexOf(tag, j + 1);
        if (end < 0) throw new LexError('unterminated dollar-quoted string');
        i = end + tag.length;
        literals++;
        emit('?');
        continue;
      }
    }
    // number (not part of an identifier such as t1)
    if (isDigit(c) || (c === 46 && isDigit(sql.charCodeAt(i + 1)))) {
      let j = i;
      while (j < n && (isDigit(sql.charCodeAt(j)) || sql.charCodeAt(j) === 46 || sql.charCodeAt(j) === 95)) j++;
      if (j < n && (sql.charCodeAt(j) | 0x20) === 101) {
        let k = j + 1;
        if (sql.charCodeAt(k) === 43 || sql.charCodeAt(k) === 45) k++;
        if (isDigit(sql.charCodeAt(k))) {
          j = k;
          while (j < n && isDigit(sql.charCodeAt(j))) j++;
        }
      }
      literals++;
      emit('?');
      i = j;
      continue;
    }
    if (isIdent(c)) {
      let j = i + 1;
      while (j < n && isIdent(sql.charCodeAt(j))) j++;
      // Unquoted identifiers and keywords fold to lower case in PostgreSQL.
      emit(sql.slice(i, j).toLowerCase());
      i = j;
      continue;
    }
    emit(sql[i]!);
    i++;
  }
  return { key: out, literals };
}
