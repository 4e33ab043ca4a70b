import { describe, expect, it } from 'vitest';
import { compileMasker, maskValue, type Masker, type MaskStrategy } from './strategies.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const str = (v: Buffer | null): string | null => (v === null ? null : v.toString('utf8'));
const run = (m: Masker, s: string): string | null => str(m(b(s)));

const KEY_A = Buffer.from('6f1c2e9a0b7d4c3e8f5a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6', 'hex');
const KEY_B = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');

// Bytes no UTF-8 decoder accepts: a lone continuation byte, an overlong '/', a truncated 3-byte sequence, a surrogate.
const INVALID_UTF8 = [
  Buffer.from([0x80]),
  Buffer.from([0x31, 0x32, 0xc0, 0xaf]),
  Buffer.concat([b('078-05-1120 '), Buffer.from([0xe2, 0x82])]),
  Buffer.from([0xed, 0xa0, 0x80]),
];

describe('redact', () => {
  it('replaces any value by the default token', () => {
    const m = compileMasker({ kind: 'redact' });
    expect(run(m, 'Jane Q. Doe')).toBe('[REDACTED]');
    expect(run(m, '')).toBe('[REDACTED]');
    expect(str(m(INVALID_UTF8[0]!))).toBe('[REDACTED]');
  });

  it('uses a custom token, unicode included, without allocating per value', () => {
    const m = compileMasker({ kind: 'redact', token: '«masqué»' });
    const first = m(b('Zoë Ångström'));
    expect(str(first)).toBe('«masqué»');
    expect(m(b('someone else'))).toBe(first);
  });
});

describe('null', () => {
  it('turns every value into SQL NULL', () => {
    const m = compileMasker({ kind: 'null' });
    expect(m(b('1957-03-14'))).toBeNull();
    expect(m(b(''))).toBeNull();
  });
});

describe('maskValue', () => {
  it('keeps SQL NULL as NULL and masks everything else', () => {
    const m = compileMasker({ kind: 'redact' });
    expect(maskValue(m, null)).toBeNull();
    expect(str(maskValue(m, b('')))).toBe('[REDACTED]');
  });
});

describe('partial', () => {
  it('keeps the last N characters of an SSN or card number', () => {
    const m = compileMasker({ kind: 'partial', keep: 4 });
    expect(run(m, '078-05-1120')).toBe('*******1120');
    expect(run(m, '4111111111111111')).toBe('************1111');
  });

  it('counts characters, not bytes, on both sides', () => {
    const m = compileMasker({ kind: 'partial', keep: 2 });
    expect(run(m, 'Zoë Ångström')).toBe('**********öm');
    expect(run(m, '李雷先生')).toBe('**先生');
    expect(run(m, 'id🩺🩺')).toBe('**🩺🩺');
    const fill = compileMasker({ kind: 'partial', keep: 1, fill: '•' });
    expect(run(fill, 'José')).toBe('•••é');
  });

  it('fully masks values no longer than keep, so a short value is never shown whole', () => {
    const m = compileMasker({ kind: 'partial', keep: 4 });
    expect(run(m, '1120')).toBe('****');
    expect(run(m, 'Al')).toBe('**');
    expect(run(m, 'Zoë')).toBe('***');
    expect(run(m, '')).toBe('');
  });

  it('keep 0 masks everything; a multi-character fill repeats per character', () => {
    expect(run(compileMasker({ kind: 'partial', keep: 0 }), 'Doe')).toBe('***');
    expect(run(compileMasker({ kind: 'partial', keep: 1, fill: 'xy' }), 'abc')).toBe('xyxyc');
  });

  it('redacts invalid UTF-8 instead of guessing where characters start', () => {
    const m = compileMasker({ kind: 'partial', keep: 4 });
    for (const v of INVALID_UTF8) expect(str(m(v))).toBe('[REDACTED]');
  });
});

describe('hash', () => {
  const strategy = (key: Buffer, prefix?: string): MaskStrategy =>
    prefix === undefined ? { kind: 'hash', key } : { kind: 'hash', key, prefix };

  it('gives a deterministic tok_ + 24 hex digits (96-bit) token', () => {
    const m = compileMasker(strategy(KEY_A));
    const t1 = run(m, '078-05-1120');
    expect(t1).toMatch(/^tok_[0-9a-f]{24}$/);
    expect(run(compileMasker(strategy(KEY_A)), '078-05-1120')).toBe(t1);
    expect(run(m, '078-05-1121')).not.toBe(t1);
  });

  it('is HMAC-SHA-256 of the value bytes under the key', async () => {
    const { createHmac } = await import('node:crypto');
    const expected = createHmac('sha256', KEY_A).update('Jane Doe').digest('hex').slice(0, 24);
    expect(run(compileMasker(strategy(KEY_A)), 'Jane Doe')).toBe(`tok_${expected}`);
  });

  it('separates keys: the same value under another key gives an unrelated token', () => {
    const a = run(compileMasker(strategy(KEY_A)), 'jane.doe@example.org');
    const c = run(compileMasker(strategy(KEY_B)), 'jane.doe@example.org');
    expect(a).not.toBe(c);
  });

  it('keeps join semantics over many values: distinct in, distinct out', () => {
    const m = compileMasker(strategy(KEY_A));
    const tokens = new Set<string>();
    for (let i = 0; i < 5000; i++) tokens.add(run(m, `MRN${String(i).padStart(7, '0')}`)!);
    expect(tokens.size).toBe(5000);
  });

  it('uses a custom prefix and handles empty, unicode and invalid UTF-8 values', () => {
    const m = compileMasker(strategy(KEY_A, 'pt:'));
    expect(run(m, '')).toMatch(/^pt:[0-9a-f]{24}$/);
    expect(run(m, 'Zoë')).not.toBe(run(m, 'Zoe'));
    expect(str(m(INVALID_UTF8[0]!))).toMatch(/^pt:[0-9a-f]{24}$/);
  });

  it('copies the key at compile time', () => {
    const key = Buffer.from(KEY_A);
    const m = compileMasker(strategy(key));
    const before = run(m, 'x');
    key.fill(0);
    expect(run(m, 'x')).toBe(before);
  });

  it('refuses short or missing keys when the policy is compiled', () => {
    expect(() => compileMasker(strategy(Buffer.from('short')))).toThrow(/at least 16 bytes/);
    expect(() => compileMasker({ kind: 'hash' } as unknown as MaskStrategy)).toThrow(/Buffer/);
  });
});

describe('email-domain', () => {
  const m = compileMasker({ kind: 'email-domain' });

  it('keeps only the (lower-cased) domain', () => {
    expect(run(m, 'jane.doe@example.org')).toBe('***@example.org');
    expect(run(m, 'J.Doe+Oncology@Mercy-Hospital.ORG')).toBe('***@mercy-hospital.org');
    expect(run(m, 'josé@clínica.es')).toBe('***@clínica.es');
    expect(run(m, ' padded@example.com  ')).toBe('***@example.com');
  });

  it('redacts whatever is not an e-mail address', () => {
    for (const s of ['', 'Jane Doe', '@example.org', 'jane@', 'jane@localhost', 'jane@[10.0.0.1]', 'a b@example.org', 'jane@exa mple.org', 'x@y@']) {
      expect(run(m, s)).toBe('[REDACTED]');
    }
    for (const v of INVALID_UTF8) expect(str(m(v))).toBe('[REDACTED]');
  });
});

describe('detect', () => {
  it('masks PHI inside free text and returns the same buffer when there is none', () => {
    const m = compileMasker({ kind: 'detect' });
    const note = 'Pt Jane Doe, SSN 078-05-1120, MRN: 00482913, cell (555) 010-4477, seen 03/14/2024.';
    expect(run(m, note)).toBe('Pt Jane Doe, SSN [SSN], MRN: [MRN], cell [PHONE], seen [DATE].');
    const clean = b('Patient tolerated the procedure well.');
    expect(m(clean)).toBe(clean);
    const empty = b('');
    expect(m(empty)).toBe(empty);
  });

  it('honours the detector list, a single replacement and a custom MRN pattern', () => {
    const onlySsn = compileMasker({ kind: 'detect', detectors: ['ssn'], replacement: '***' });
    expect(run(onlySsn, 'SSN 078-05-1120 phone 555-010-4477')).toBe('SSN *** phone 555-010-4477');
    const site = compileMasker({ kind: 'detect', detectors: ['mrn'], mrnPattern: /\bMRN-\d{5}\b/ });
    expect(run(site, 'chart MRN-12345 and AB1234567')).toBe('chart [MRN] and AB1234567');
  });

  it('redacts text that is not valid UTF-8 rather than scanning it half-blind', () => {
    const m = compileMasker({ kind: 'detect' });
    for (const v of INVALID_UTF8) expect(str(m(v))).toBe('[REDACTED]');
  });
});

describe('compileMasker validation', () => {
  it('rejects unknown kinds and bad parameters at compile time', () => {
    expect(() => compileMasker({ kind: 'shuffle' } as unknown as MaskStrategy)).toThrow(/unknown mask strategy/);
    expect(() => compileMasker({ kind: 'partial', keep: -1 })).toThrow(/keep/);
    expect(() => compileMasker({ kind: 'partial', keep: 1.5 })).toThrow(/keep/);
    expect(() => compileMasker({ kind: 'partial', keep: 2, fill: '' })).toThrow(/fill/);
    expect(() => compileMasker({ kind: 'generalize', as: 'zipcode' } as unknown as MaskStrategy)).toThrow(/generalization/);
    expect(() => compileMasker({ kind: 'detect', detectors: ['iban' as never] })).toThrow(/unknown detector/);
    expect(() => compileMasker(null as unknown as MaskStrategy)).toThrow();
  });
});

/** Deterministic byte noise (xorshift32), so a failure reproduces. */
function noise(count: number): Buffer[] {
  let x = 0x9e3779b9;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  return Array.from({ length: count }, (_, i) => Buffer.from(Array.from({ length: 1 + (i % 40) }, () => next() & 0xff)));
}

describe('every masker on hostile input', () => {
  const strategies: MaskStrategy[] = [
    { kind: 'redact' },
    { kind: 'null' },
    { kind: 'partial', keep: 4 },
    { kind: 'hash', key: KEY_A },
    { kind: 'generalize', as: 'date' },
    { kind: 'generalize', as: 'zip' },
    { kind: 'generalize', as: 'age' },
    { kind: 'email-domain' },
    { kind: 'detect' },
  ];
  const inputs: Buffer[] = [
    b(''),
    ...INVALID_UTF8,
    Buffer.from([0]),
    b('\u0000\uFFFF\uD7FF'),
    b('x'.repeat(100_000)),
    b('9'.repeat(10_000)),
    ...noise(300),
  ];

  it('never throws and never hands back the raw bytes of a value it could not interpret', () => {
    for (const s of strategies) {
      const m = compileMasker(s);
      for (const v of inputs) {
        let out: Buffer | null = null;
        expect(() => (out = m(v))).not.toThrow();
        const interpretedAsSafe = s.kind === 'detect' || (s.kind === 'generalize' && s.as === 'age');
        if (out !== null && v.length > 0 && !interpretedAsSafe) expect(Buffer.compare(out, v)).not.toBe(0);
      }
    }
  });
});
