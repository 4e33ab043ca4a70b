/**
 * float4/float8 to text exactly as PostgreSQL (12+, extra_float_digits >= 1)
 * prints them. Exactness matters beyond looks: a hashed float column must give
 * the same token whether the client asked for text or binary results.
 *
 * PostgreSQL uses Ryu built without STRICTLY_SHORTEST: the shortest decimal
 * strictly inside the rounding interval of the float (a decimal exactly on
 * the interval's edge is refused, even where round-half-even would read it
 * back correctly), the nearest such decimal, ties to even. JavaScript's
 * shortest-digits conversion may accept the edge, and float4 has no native
 * shortest conversion at all, so the interval is checked here with exact
 * BigInt arithmetic whenever the fast answer could differ.
 */

const TWO_POW_53 = 2 ** 53;

export function float8Text(x: number): string {
  const special = specialText(x);
  if (special !== undefined) return special;
  const a = Math.abs(x);
  const s = a.toExponential();
  const e = s.indexOf('e');
  // Interval edges of a double below 2^53 are dyadic fractions whose decimal
  // expansion ends in 5; a shortest result not ending in 5 cannot sit on one.
  if (a < TWO_POW_53 && s[e - 1] !== '5') {
    return format(x < 0, s.slice(0, e).replace('.', ''), Number(s.slice(e + 1)), 15);
  }
  const pStart = s.slice(0, e).replace('.', '').length;
  const [digits, exp] = shortest(exactParts(a, false), Number(s.slice(e + 1)), pStart);
  return format(x < 0, digits, exp, 15);
}

export function float4Text(x: number): string {
  const special = specialText(x);
  if (special !== undefined) return special;
  const a = Math.abs(x);
  const s = a.toExponential();
  const [digits, exp] = shortest(exactParts(a, true), Number(s.slice(s.indexOf('e') + 1)), 1);
  return format(x < 0, digits, exp, 6);
}

function specialText(x: number): string | undefined {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  return undefined;
}

/**
 * Fixed notation when the decimal exponent is in [-4, fixedLimit) (printf %g
 * with precision 6 for float4, 15 for float8), else d.ddde±XX.
 */
function format(negative: boolean, rawDigits: string, exp: number, fixedLimit: number): string {
  const sign = negative ? '-' : '';
  const digits = rawDigits.replace(/0+$/, '') || '0';
  const n = digits.length;
  if (exp >= -4 && exp < fixedLimit) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    if (n <= exp + 1) return sign + digits + '0'.repeat(exp + 1 - n);
    return `${sign}${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  }
  const mantissa = n > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const absExp = Math.abs(exp);
  return `${sign}${mantissa}e${exp < 0 ? '-' : '+'}${absExp < 10 ? '0' : ''}${absExp}`;
}

/** A positive float as m * 2^e, with the width of its rounding interval below. */
interface Exact {
  m: bigint;
  e: number;
  /** At a power of two the next float down is closer: the interval is narrower below. */
  lowerTight: boolean;
}

const view = new DataView(new ArrayBuffer(8));

function exactParts(a: number, single: boolean): Exact {
  if (single) {
    view.setFloat32(0, a);
    const bits = view.getUint32(0) & 0x7fffffff;
    const biased = bits >>> 23;
    const mant = bits & 0x7fffff;
    if (biased === 0) return { m: BigInt(mant), e: -149, lowerTight: false };
    return { m: BigInt(mant | 0x800000), e: biased - 150, lowerTight: mant === 0 && biased > 1 };
  }
  view.setFloat64(0, a);
  const hi = view.getUint32(0) & 0x7fffffff;
  const lo = view.getUint32(4);
  const biased = hi >>> 20;
  const mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (biased === 0) return { m: mant, e: -1074, lowerTight: false };
  return { m: mant | (1n << 52n), e: biased - 1075, lowerTight: mant === 0n && biased > 1 };
}

/** Sign of (n * 10^k) - (b * 2^s), exactly. */
function compare(n: bigint, k: number, b: bigint, s: number): number {
  let left = n;
  let right = b;
  if (k >= 0) left *= 10n ** BigInt(k);
  else right *= 10n ** BigInt(-k);
  if (s >= 0) right <<= BigInt(s);
  else left <<= BigInt(-s);
  return left < right ? -1 : left > right ? 1 : 0;
}

/**
 * Shortest digits (and decimal exponent of the first digit) strictly inside
 * the rounding interval. `approxExp` may be one too high when the value
 * rounds up to a power of ten; it is corrected first.
 */
function shortest(x: Exact, approxExp: number, pStart: number): [string, number] {
  const { m, e, lowerTight } = x;
  // Interval and value in units of 2^(e-2): (lo4, hi4) around x4.
  const s = e - 2;
  const x4 = 4n * m;
  const lo4 = x4 - (lowerTight ? 1n : 2n);
  const hi4 = x4 + 2n;
  let exp10 = approxExp;
  if (compare(1n, exp10, x4, s) > 0) exp10 -= 1;

  for (let p = pStart; p <= 20; p++) {
    const k = exp10 - p + 1;
    // n = floor(x / 10^k), rem = whether x is not a multiple of 10^k.
    let num = m;
    let den = 1n;
    if (e >= 0) num <<= BigInt(e);
    else den <<= BigInt(-e);
    if (k >= 0) den *= 10n ** BigInt(k);
    else num *= 10n ** BigInt(-k);
    const n = num / den;
    if (num % den === 0n) return [n.toString(), exp10];
    const lowOk = compare(n, k, lo4, s) > 0;
    const highOk = compare(n + 1n, k, hi4, s) < 0;
    let pick: bigint | undefined;
    if (lowOk && highOk) {
      // Nearest of the two; on an exact tie, the even one.
      const c = compare(2n * n + 1n, k, 2n * x4, s);
      pick = c > 0 ? n : c < 0 ? n + 1n : n % 2n === 0n ? n : n + 1n;
    } else if (lowOk) pick = n;
    else if (highOk) pick = n + 1n;
    if (pick !== undefined) {
      const str = pick.toString();
      // n + 1 may have carried into a new digit (999 -> 1000).
      return [str, exp10 + (str.length - p)];
    }
  }
  // Unreachable for finite floats (17 digits always suffice); a safe exact fallback.
  const t = Number(x.m) * 2 ** x.e;
  const fb = t.toExponential();
  return [fb.slice(0, fb.indexOf('e')).replace('.', ''), Number(fb.slice(fb.indexOf('e') + 1))];
}
