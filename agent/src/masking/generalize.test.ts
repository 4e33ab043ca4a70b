import { describe, expect, it } from 'vitest';
import { RESTRICTED_ZIP3 } from './generalize.js';
import { compileMasker } from './strategies.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const date = compileMasker({ kind: 'generalize', as: 'date' });
const zip = compileMasker({ kind: 'generalize', as: 'zip' });
const age = compileMasker({ kind: 'generalize', as: 'age' });
const run = (m: typeof date, s: string): string | undefined => m(b(s))?.toString('utf8');

describe('generalize: date', () => {
  it('keeps only the year of ISO dates and timestamps', () => {
    expect(run(date, '1957-03-14')).toBe('1957');
    expect(run(date, '1957-03-14 10:22:00')).toBe('1957');
    expect(run(date, '1957-03-14 10:22:00+00')).toBe('1957');
    expect(run(date, '1957-03-14 10:22:00.123456-05:30')).toBe('1957');
    expect(run(date, '2024-02-29T23:59:59Z')).toBe('2024');
    expect(run(date, '2000-01-01 24:00:00')).toBe('2000');
    expect(run(date, '12021-06-01')).toBe('12021');
  });

  it('keeps BC dates marked as BC, in PostgreSQL year notation', () => {
    expect(run(date, '0044-03-15 BC')).toBe('0044 BC');
    expect(run(date, '4714-11-24 00:00:00+00 BC')).toBe('4714 BC');
    expect(run(date, '0001-01-01 00:00:00 BC')).toBe('0001 BC');
  });

  it('understands the SQL, German and Postgres DateStyles as far as the year', () => {
    expect(run(date, '03/14/1957')).toBe('1957');
    expect(run(date, '14/03/1957 10:22:00 UTC')).toBe('1957');
    expect(run(date, '14.03.1957')).toBe('1957');
    expect(run(date, '03-14-1957')).toBe('1957');
    expect(run(date, 'Thu Mar 14 10:22:00 1957 PST')).toBe('1957');
    expect(run(date, 'Thu Mar 14 10:22:00.5 1957')).toBe('1957');
  });

  it('passes infinity through, since it names no day', () => {
    expect(run(date, 'infinity')).toBe('infinity');
    expect(run(date, '-infinity')).toBe('-infinity');
  });

  it('redacts anything that is not a date, never returning it', () => {
    for (const s of ['', 'yesterday', '1957', '1957-13-01', '1957-02-32', '57-03-14', '1957-03-14 25:00', '1957-03-14junk', ' 1957-03-14', 'Jane Doe, DOB 1957-03-14', '1957‐03‐14']) {
      expect(run(date, s)).toBe('[REDACTED]');
    }
    expect(run(date, `1957-03-14 10:22:00${' '.repeat(80)}`)).toBe('[REDACTED]');
    expect(date(Buffer.from([0x31, 0x39, 0x35, 0x37, 0x2d, 0xff]))?.toString()).toBe('[REDACTED]');
  });
});

describe('generalize: zip (HIPAA Safe Harbor)', () => {
  it('keeps the first three digits of a populous ZIP3', () => {
    expect(run(zip, '02139')).toBe('021**');
    expect(run(zip, '02139-4307')).toBe('021**');
    expect(run(zip, '021394307')).toBe('021**');
    expect(run(zip, '10027')).toBe('100**');
    expect(run(zip, '94110   ')).toBe('941**');
  });

  it('reports every restricted ZIP3 of the HHS guidance as 000', () => {
    expect(RESTRICTED_ZIP3).toEqual(['036', '059', '063', '102', '203', '556', '692', '790', '821', '823', '830', '831', '878', '879', '884', '890', '893']);
    for (const z3 of RESTRICTED_ZIP3) {
      expect(run(zip, `${z3}45`)).toBe('000**');
      expect(run(zip, `${z3}45-1234`)).toBe('000**');
    }
    // Neighbours of restricted prefixes are not restricted.
    expect(run(zip, '03701')).toBe('037**');
    expect(run(zip, '82201')).toBe('822**');
  });

  it('redacts what is not a US ZIP code', () => {
    for (const s of ['', '0213', '021390', '02139-43', '02139 4307', 'SW1A 1AA', 'K1A 0B1', '02l39', '０２１３９']) {
      expect(run(zip, s)).toBe('[REDACTED]');
    }
  });
});

describe('generalize: age', () => {
  it('pools 90 and over into 90+, keeps younger ages as they are', () => {
    expect(run(age, '0')).toBe('0');
    expect(run(age, '45')).toBe('45');
    expect(run(age, '89')).toBe('89');
    expect(run(age, '89.99')).toBe('89.99');
    expect(run(age, '90')).toBe('90+');
    expect(run(age, '90.0')).toBe('90+');
    expect(run(age, '104')).toBe('90+');
    expect(run(age, '1e+02')).toBe('90+');
    expect(run(age, '9'.repeat(400))).toBe('90+');
    expect(run(age, 'Infinity')).toBe('[REDACTED]');
  });

  it('returns the very same buffer for a young age (nothing to hide, nothing to copy)', () => {
    const v = b('42');
    expect(age(v)).toBe(v);
  });

  it('redacts what is not an age', () => {
    for (const s of ['', '-1', '-0', 'NaN', 'ninety', '89 years', ' 89', '8 9', '0x5A', '90+', '1,000']) {
      expect(run(age, s)).toBe('[REDACTED]');
    }
  });
});

describe('generalizers fail closed', () => {
  it('never return the input bytes for unparseable input', () => {
    const unparseable = ['Jane Doe', '078-05-1120', '', 'tomorrow', '90210-', '\u0000', '🩺', 'DROP TABLE patients'];
    for (const m of [date, zip, age]) {
      for (const s of unparseable) {
        const input = b(s);
        const out = m(input);
        expect(out).not.toBe(input);
        expect(out?.toString()).toBe('[REDACTED]');
      }
      const garbage = Buffer.from([0xc3, 0x28, 0xa0, 0xa1]);
      expect(m(garbage)?.toString()).toBe('[REDACTED]');
    }
  });
});
