import { describe, expect, it } from 'vitest';
import { compileDetectors, maskText, type DetectorName } from './detectors.js';

const only = (name: DetectorName, text: string): string => maskText(text, [name]);

describe('ssn', () => {
  it('masks dashed SSNs (ITIN ranges included)', () => {
    expect(only('ssn', 'SSN 078-05-1120 on file')).toBe('SSN [SSN] on file');
    expect(only('ssn', '078-05-1120')).toBe('[SSN]');
    expect(only('ssn', 'ITIN 912-70-1234.')).toBe('ITIN [SSN].');
  });

  it('masks nine bare digits only behind a label, keeping the label', () => {
    expect(only('ssn', 'SSN 078051120')).toBe('SSN [SSN]');
    expect(only('ssn', 'ssn: 078051120')).toBe('ssn: [SSN]');
    expect(only('ssn', 'SS# 078 05 1120')).toBe('SS# [SSN]');
    expect(only('ssn', 'Social Security Number: 078-05-1120')).toBe('Social Security Number: [SSN]');
    expect(only('ssn', 'order 078051120')).toBe('order 078051120');
  });

  it('leaves longer digit runs and other shapes alone', () => {
    expect(only('ssn', '1078-05-11201')).toBe('1078-05-11201');
    expect(only('ssn', 'SSN 0780511201')).toBe('SSN 0780511201');
    expect(only('ssn', '07-805-1120')).toBe('07-805-1120');
  });
});

describe('phone', () => {
  it('masks the usual US formats', () => {
    for (const p of ['(555) 010-4477', '(555)010-4477', '555-010-4477', '+1 555 010 4477', '1-555-010-4477', '555.010.4477', '+1 (555) 010-4477']) {
      expect(only('phone', `call ${p} today`)).toBe('call [PHONE] today');
    }
  });

  it('does not take bare digit runs, SSNs or longer numbers for phones', () => {
    expect(only('phone', 'NPI 5550104477')).toBe('NPI 5550104477');
    expect(only('phone', '078-05-1120')).toBe('078-05-1120');
    expect(only('phone', '12555-010-44770')).toBe('12555-010-44770');
  });
});

describe('email', () => {
  it('masks addresses, unicode ones too', () => {
    expect(only('email', 'Reply to jane.doe+onc@mercy-hospital.org.')).toBe('Reply to [EMAIL].');
    expect(only('email', 'josé.núñez@clínica.es escribió')).toBe('[EMAIL] escribió');
    expect(only('email', '<J_Doe@Example.CO.UK>')).toBe('<[EMAIL]>');
  });

  it('leaves handles and bare @ alone', () => {
    expect(only('email', 'ping @drsmith at 3pm')).toBe('ping @drsmith at 3pm');
    expect(only('email', 'a@b')).toBe('a@b');
  });
});

describe('mrn', () => {
  it('masks labelled record numbers, keeping the label', () => {
    expect(only('mrn', 'MRN: 00482913')).toBe('MRN: [MRN]');
    expect(only('mrn', 'mrn#4829137')).toBe('mrn#[MRN]');
    expect(only('mrn', 'MR# AB1234567')).toBe('MR# [MRN]');
    expect(only('mrn', 'Medical Record Number 48291370')).toBe('Medical Record Number [MRN]');
  });

  it('masks the bare capital-letters-then-digits shape, case-sensitively', () => {
    expect(only('mrn', 'chart AB1234567 reviewed')).toBe('chart [MRN] reviewed');
    expect(only('mrn', 'acc LAB12345678')).toBe('acc [MRN]');
    expect(only('mrn', 'chart ab1234567')).toBe('chart ab1234567');
    expect(only('mrn', 'ICD10 E11.9, A1234567, ABCD1234567')).toBe('ICD10 E11.9, A1234567, ABCD1234567');
  });

  it('uses a site-specific pattern instead of the defaults when configured', () => {
    const d = compileDetectors({ detectors: ['mrn'], mrnPattern: 'H-\\d{4}-\\d{4}' });
    expect(d.maskText('chart H-2024-0042 and AB1234567')).toBe('chart [MRN] and AB1234567');
    const ci = compileDetectors({ detectors: ['mrn'], mrnPattern: /pt-[a-z]{3}/iy });
    expect(ci.maskText('PT-ABC then pt-xyz')).toBe('[MRN] then [MRN]');
    // A pattern that can match the empty string must not loop or mask nothing into tokens.
    const empty = compileDetectors({ detectors: ['mrn'], mrnPattern: /x*/ });
    expect(empty.maskText('abxxc')).toBe('ab[MRN]c');
  });
});

describe('date', () => {
  it('masks ISO, US, day-first and written-out dates', () => {
    const cases = [
      '2024-01-31', '2024/01/31', '2024-01-31 14:05', '2024-01-31T14:05:09Z', '01/31/2024', '1/31/24', '1-31-2024',
      '31/01/2024', '31.01.2024', 'Jan 31, 2024', 'January 31 2024', 'Jan. 31st, 2024', 'SEPT 9, 1999',
      '31 January 2024', '1st of March, 2024', '3 Mar 2024', 'March 2024',
    ];
    for (const c of cases) expect(only('date', `seen ${c}.`)).toBe('seen [DATE].');
  });

  it('leaves impossible dates and plain numbers alone', () => {
    for (const s of ['2024-13-01', '13/31/2024', '2024-1-1', 'room 12/40', '500 mg', 'version 1.2.3']) {
      expect(only('date', s)).toBe(s);
    }
  });
});

describe('maskText', () => {
  const note =
    'Jane Q. Doe (DOB 03/14/1957, SSN 078-05-1120, MRN: 00482913) called from (555) 010-4477; ' +
    'reply to jane.doe@example.org. Next visit Feb 3, 2025.';

  it('replaces every kind of PHI in a clinical note by its typed placeholder', () => {
    expect(maskText(note)).toBe(
      'Jane Q. Doe (DOB [DATE], SSN [SSN], MRN: [MRN]) called from [PHONE]; reply to [EMAIL]. Next visit [DATE].',
    );
  });

  it('accepts a replacement for all or per detector', () => {
    const all = compileDetectors({ replacement: '█' });
    expect(all.maskText('SSN 078-05-1120, 555-010-4477')).toBe('SSN █, █');
    const per = compileDetectors({ replacement: { ssn: '<ssn>' } });
    expect(per.maskText('SSN 078-05-1120, 555-010-4477')).toBe('SSN <ssn>, [PHONE]');
  });

  it('resolves overlaps leftmost first, then longest', () => {
    const d = compileDetectors();
    expect(d.findMatches('x 2024-01-31 14:05 y')).toEqual([{ detector: 'date', start: 2, end: 18 }]);
    // The e-mail starts first, so its digits are not also read as an SSN.
    expect(d.maskText('078-05-1120@example.org')).toBe('[EMAIL]');
    expect(d.maskText('SSN078-05-1120')).toBe('SSN[SSN]');
  });

  it('keeps unicode text around matches intact', () => {
    expect(maskText('Zoë Ångström 李雷 — SSN 078-05-1120 🩺')).toBe('Zoë Ångström 李雷 — SSN [SSN] 🩺');
  });

  it('returns the input string itself when nothing matches, and handles empty text', () => {
    const s = 'Patient tolerated the procedure well; follow up in two weeks.';
    expect(maskText(s)).toBe(s);
    expect(maskText('')).toBe('');
    expect(maskText(note, [])).toBe(note);
  });

  it('rejects unknown detector names', () => {
    expect(() => compileDetectors({ detectors: ['iban' as DetectorName] })).toThrow(/unknown detector/);
  });
});

describe('TextDetector.maskBuffer', () => {
  const d = compileDetectors();

  it('returns the same Buffer when nothing matches: no copy on the common path', () => {
    for (const s of ['', 'no digits or at-signs here', 'dose 500 mg x 10 days', 'Zoë 李雷 🩺']) {
      const v = Buffer.from(s);
      expect(d.maskBuffer(v)).toBe(v);
    }
  });

  it('returns a new masked buffer when something matches', () => {
    const v = Buffer.from('SSN 078-05-1120 — Zoë');
    const out = d.maskBuffer(v)!;
    expect(out).not.toBe(v);
    expect(out.toString('utf8')).toBe('SSN [SSN] — Zoë');
  });

  it('refuses invalid UTF-8 (undefined: the caller fails closed)', () => {
    expect(d.maskBuffer(Buffer.from([0x53, 0x53, 0x4e, 0x20, 0xff]))).toBeUndefined();
    expect(d.maskBuffer(Buffer.from([0xe2, 0x82]))).toBeUndefined();
  });

  it('stays linear on long adversarial text', () => {
    const inputs = ['1'.repeat(200_000), '12-'.repeat(70_000), `${'a'.repeat(100_000)}@${'b'.repeat(100_000)}`, `a@${'b.'.repeat(100_000)}`, 'SSN '.repeat(50_000)];
    const started = Date.now();
    for (const s of inputs) d.maskBuffer(Buffer.from(s));
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
