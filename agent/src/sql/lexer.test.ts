import { describe, expect, it } from 'vitest';
import { LexError, normalizeSql } from './lexer.js';

const key = (s: string): string => normalizeSql(s).key;

describe('normalizeSql', () => {
  it('gives statements that differ only in literals one key', () => {
    expect(key("SELECT a FROM t WHERE id = 42 AND name = 'bob'")).toBe(key("select a from t where id=7 and name='x''y'"));
    expect(key('SELECT 1.5e-3, .5, 10')).toBe('select ?,?,?');
    expect(normalizeSql("SELECT 'a', E'b\\'c', $$d$$, $tag$ $$ e $tag$, B'101', X'ff', U&'\\0041'").literals).toBe(7);
  });

  it('keeps identifiers, quoted identifiers and parameters apart', () => {
    expect(key('SELECT ssn FROM patients')).not.toBe(key('SELECT zip FROM patients'));
    expect(key('SELECT "SSN" FROM p')).not.toBe(key('SELECT ssn FROM p'));
    expect(key('SELECT SSN FROM P')).toBe(key('select ssn from p'));
    expect(key('SELECT t1.a, $1, $12 FROM t1')).toBe('select t1.a,$1,$12 from t1');
    expect(key('SELECT a + -b')).not.toBe(key('SELECT a +- b'));
  });

  it('drops comments, including nested ones, and collapses whitespace', () => {
    expect(key('SELECT /* a /* nested */ comment */ a -- tail\n  FROM   t')).toBe('select a from t');
  });

  it('does not let a comment marker inside a string hide SQL', () => {
    expect(key("SELECT '--' || ssn FROM p")).toBe('select ?||ssn from p');
    expect(key("SELECT $x$ /* $x$, ssn FROM p")).toBe('select ?,ssn from p');
  });

  it('refuses what it cannot read', () => {
    expect(() => normalizeSql("SELECT 'unterminated")).toThrow(LexError);
    expect(() => normalizeSql('SELECT /* unterminated')).toThrow(LexError);
    expect(() => normalizeSql('SELECT $a$ unterminated')).toThrow(LexError);
    expect(() => normalizeSql('SELECT "unterminated')).toThrow(LexError);
  });
});
