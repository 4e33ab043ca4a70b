import { describe, expect, it } from 'vitest';
import { isLoopback, parseClock, parseDuration, patternCovers, patternMatches, patternsIntersect, re2Problem } from './patterns.js';

describe('pattern reasoning', () => {
  it('matches like the agent: * stays within one segment', () => {
    expect(patternMatches('clinic.*', 'clinic.patients')).toBe(true);
    expect(patternMatches('clinic.*', 'clinic.a.b')).toBe(false);
    expect(patternMatches('clinic.pat*', 'clinic.patients')).toBe(true);
    expect(patternMatches('clinic.*_name', 'clinic.first_name')).toBe(true);
    expect(patternMatches('clinic.*_name', 'clinic.firstname')).toBe(false);
  });

  it('decides coverage', () => {
    expect(patternCovers('clinic.*', 'clinic.patients')).toBe(true);
    expect(patternCovers('clinic.*', 'clinic.pat*')).toBe(true);
    expect(patternCovers('clinic.pat*', 'clinic.*')).toBe(false);
    expect(patternCovers('*.*.*', 'clinic.patients.ssn')).toBe(true);
    expect(patternCovers('a*b', 'a*xb')).toBe(true);
    expect(patternCovers('a*xb', 'a*b')).toBe(false);
    expect(patternCovers('clinic.*', 'clinic.patients.ssn')).toBe(false);
  });

  it('decides intersection', () => {
    expect(patternsIntersect('clinic.pat*', 'clinic.*ents')).toBe(true);
    expect(patternsIntersect('clinic.a*', 'clinic.b*')).toBe(false);
    expect(patternsIntersect('*.patients', 'clinic.*')).toBe(true);
    expect(patternsIntersect('first*', '*name')).toBe(true);
    expect(patternsIntersect('clinic.x', 'clinic.x.y')).toBe(false);
  });

  it('parses durations, clock times and hosts', () => {
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('5 minutes')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
    expect(parseClock('08:30')).toBe(510);
    expect(parseClock('24:00')).toBeUndefined();
    for (const h of ['localhost', '127.0.0.1', '::1', '127.1.2.3']) expect(isLoopback(h)).toBe(true);
    for (const h of ['db.internal', '10.0.0.1', 'localhost.example.com']) expect(isLoopback(h)).toBe(false);
  });

  it('flags regular expressions RE2 cannot run', () => {
    expect(re2Problem('\\bMRN-\\d{6}\\b')).toBeUndefined();
    expect(re2Problem('(?=x)y')).toMatch(/RE2/);
    expect(re2Problem('(a)\\1')).toMatch(/RE2/);
    expect(re2Problem('(')).toBeDefined();
  });
});
