/**
 * Turns the bundle's masking strategies (proto) into the masking library's
 * compiled maskers. Anything the library cannot do exactly as the bundle
 * says is a load-time error: a policy is never enforced approximately.
 */
import type { MaskingStrategy, MaskSpec } from '../../../proto/src/index.js';
import { DatePrecision } from '../../../proto/src/index.js';
import { compileMasker, HASH_HEX_DIGITS, type DetectorName, type Masker, type MaskStrategy } from '../masking/index.js';
import { resolveSecret } from '../config/secrets.js';

export class PolicyLoadError extends Error {}

/** A masker that always yields the same value (redact, null). */
export type ConstantMasker = Masker & { constant?: Buffer | null };

const LIBRARY_DETECTORS = new Set<string>(['ssn', 'phone', 'email', 'mrn', 'date']);

function param(spec: MaskSpec | undefined, name: string): string | undefined {
  return spec?.params[name];
}

/** Resolves a secret reference; validation tools pass one that never reads real secrets. */
export type SecretResolver = (ref: string, baseDir: string) => string;

/** For policy tests and validation: decisions never depend on key values, so no real key is read. */
export const placeholderSecrets: SecretResolver = (ref) => `placeholder-for-${ref}-0123456789`;

function toLibrary(s: MaskingStrategy, spec: MaskSpec | undefined, baseDir: string, secrets: SecretResolver): MaskStrategy {
  const k = s.kind;
  switch (k.case) {
    case 'redact':
      return { kind: 'redact', token: param(spec, 'replacement') ?? (k.value.replacement || undefined) };
    case 'nullify':
      return { kind: 'null' };
    case 'partial': {
      const keepPrefix = Number(param(spec, 'keep_prefix') ?? k.value.keepPrefix);
      if (keepPrefix !== 0) throw new PolicyLoadError(`strategy ${s.name}: keep_prefix is not supported; mask a suffix only`);
      const keep = Number(param(spec, 'keep_suffix') ?? k.value.keepSuffix);
      return { kind: 'partial', keep, fill: param(spec, 'mask_char') ?? (k.value.maskChar || '*') };
    }
    case 'hash': {
      const chars = Number(param(spec, 'output_chars') ?? k.value.outputChars);
      if (chars !== 0 && chars !== HASH_HEX_DIGITS) {
        throw new PolicyLoadError(`strategy ${s.name}: output_chars must be ${HASH_HEX_DIGITS} (96 bits)`);
      }
      if (!k.value.keyRef) throw new PolicyLoadError(`strategy ${s.name}: hash needs key_ref`);
      const key = Buffer.from(secrets(k.value.keyRef, baseDir), 'utf8');
      return { kind: 'hash', key, prefix: param(spec, 'prefix') ?? (k.value.prefix || undefined) };
    }
    case 'generalize': {
      const m = k.value.method;
      if (m.case === 'date') {
        if (m.value.precision !== DatePrecision.YEAR) throw new PolicyLoadError(`strategy ${s.name}: only year precision is supported`);
        return { kind: 'generalize', as: 'date' };
      }
      if (m.case === 'number') {
        if (m.value.bucketSize !== 1 || m.value.ceiling !== 90) {
          throw new PolicyLoadError(`strategy ${s.name}: number generalisation supports ages (bucket 1, ceiling 90) only`);
        }
        return { kind: 'generalize', as: 'age' };
      }
      if (m.case === 'prefix') {
        if (m.value.keepChars !== 3) throw new PolicyLoadError(`strategy ${s.name}: prefix generalisation supports ZIP3 (keep 3) only`);
        return { kind: 'generalize', as: 'zip' };
      }
      throw new PolicyLoadError(`strategy ${s.name}: generalize has no method`);
    }
    case 'emailDomain':
      return { kind: 'email-domain' };
    case 'detect': {
      const unknown = k.value.detectors.filter((d) => !LIBRARY_DETECTORS.has(d));
      if (unknown.length > 0) throw new PolicyLoadError(`strategy ${s.name}: unsupported detectors ${unknown.join(', ')}`);
      if (k.value.customPatterns.length > 0) throw new PolicyLoadError(`strategy ${s.name}: custom patterns are not supported yet`);
      return {
        kind: 'detect',
        ...(k.value.detectors.length > 0 ? { detectors: k.value.detectors as DetectorName[] } : {}),
        ...(k.value.replacement ? { replacement: k.value.replacement } : {}),
      };
    }
    default:
      throw new PolicyLoadError(`strategy ${s.name} has no kind`);
  }
}

/** Compiles each (strategy, params) once; the result is shared by every rule that names it. */
export class MaskerFactory {
  private readonly strategies: Map<string, MaskingStrategy>;
  private readonly cache = new Map<string, Masker>();

  constructor(
    strategies: MaskingStrategy[],
    private readonly baseDir: string,
    private readonly secrets: SecretResolver = resolveSecret,
  ) {
    this.strategies = new Map(strategies.map((s) => [s.name, s]));
  }

  get(spec: MaskSpec): { masker: Masker; description: string } {
    const params = Object.entries(spec.params).sort(([a], [b]) => a.localeCompare(b));
    const description = params.length > 0 ? `${spec.strategy}(${params.map(([k, v]) => `${k}=${v}`).join(',')})` : spec.strategy;
    let masker = this.cache.get(description);
    if (!masker) {
      const strategy = this.strategies.get(spec.strategy);
      if (!strategy) throw new PolicyLoadError(`masking strategy "${spec.strategy}" is not in the bundle`);
      const lib = toLibrary(strategy, spec, this.baseDir, this.secrets);
      masker = compileMasker(lib);
      // A masker whose output ignores its input lets the row rewriter skip reading the value at all.
      if (lib.kind === 'redact' || lib.kind === 'null') (masker as ConstantMasker).constant = masker(Buffer.alloc(0));
      this.cache.set(description, masker);
    }
    return { masker, description };
  }
}
