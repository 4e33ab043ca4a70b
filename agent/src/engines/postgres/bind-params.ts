/**
 * Bind parameter values for the audit record. A value is kept as sent only
 * when the statement's analysis ties it to unclassified, allowed columns;
 * one compared to or written into a masked or PHI column is masked like that
 * column, and one whose origin cannot be established is redacted for roles
 * with PHI restrictions (fail closed). The raw values never leave this
 * function.
 */
import { binaryToTextBuffer, compileMasker, type Masker } from '../../masking/index.js';
import type { RecordedValue } from '../../audit/events.js';
import type { StatementPlan } from '../../policy/decide.js';
import { readBindValues } from './wire/frontend-messages.js';

const REDACT = compileMasker({ kind: 'redact' });

/** How to record parameters when there is no plan: a refused or undecided statement. */
export function fallbackParamMasker(restrictsPhi: boolean): Masker | null {
  return restrictsPhi ? REDACT : null;
}

/** A value's text form: text format as sent, binary decoded by its declared type, else hex. */
export function paramText(value: Buffer, format: number, typeOid: number | undefined): Buffer {
  if (format === 0) return value;
  const text = typeOid ? binaryToTextBuffer(typeOid, value) : undefined;
  return text ?? Buffer.from('\\x' + value.toString('hex'), 'latin1');
}

/**
 * Reads a Bind frame's parameter values and renders them for the record.
 * `paramTypes` are the types the client declared at Parse (0 or missing = unknown).
 */
export function recordBindParams(frame: Buffer, paramTypes: readonly number[], plan: StatementPlan | undefined, fallback: Masker | null): RecordedValue[] {
  const { values, formats } = readBindValues(frame);
  return values.map((raw, i) => {
    if (raw === null) return { value: null };
    const number = i + 1;
    const masker = plan?.params?.has(number) ? plan.params.get(number)! : plan ? (plan.unknownParams ?? null) : fallback;
    const format = formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0);
    const text = paramText(raw, format, paramTypes[i]);
    if (!masker) return { value: text.toString('utf8') };
    const masked = masker(text);
    return { value: masked === null ? null : masked.toString('utf8'), masked: true };
  });
}
