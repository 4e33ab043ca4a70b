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
import { cstring } from './wire/frontend-messages.js';

const REDACT = compileMasker({ kind: 'redact' });

/** How to record parameters when there is no plan: a refused or undecided statement. */
export function fallbackParamMasker(restrictsPhi: boolean): Masker | null {
  return restrictsPhi ? REDACT : null;
}

/** A value's text form: text format as sent, binary decoded by its declared type, else hex. */
function asText(value: Buffer, format: number, typeOid: number | undefined): Buffer {
  if (format === 0) return value;
  const text = typeOid ? binaryToTextBuffer(typeOid, value) : undefined;
  return text ?? Buffer.from('\\x' + value.toString('hex'), 'latin1');
}

/**
 * Reads a Bind frame's parameter values and renders them for the record.
 * `paramTypes` are the types the client declared at Parse (0 or missing = unknown).
 */
export function recordBindParams(frame: Buffer, paramTypes: readonly number[], plan: StatementPlan | undefined, fallback: Masker | null): RecordedValue[] {
  const [, p1] = cstring(frame, 5);
  let pos = cstring(frame, p1)[1];
  const nFormats = frame.readInt16BE(pos);
  const formats: number[] = [];
  for (let i = 0; i < nFormats; i++) formats.push(frame.readInt16BE(pos + 2 + 2 * i));
  pos += 2 + 2 * nFormats;
  const n = frame.readInt16BE(pos);
  pos += 2;
  const out: RecordedValue[] = [];
  for (let i = 0; i < n; i++) {
    const len = frame.readInt32BE(pos);
    pos += 4;
    const number = i + 1;
    const masker = plan?.params?.has(number) ? plan.params.get(number)! : plan ? (plan.unknownParams ?? null) : fallback;
    if (len < 0) {
      out.push({ value: null });
      continue;
    }
    const raw = frame.subarray(pos, pos + len);
    pos += len;
    const format = nFormats === 0 ? 0 : nFormats === 1 ? formats[0]! : (formats[i] ?? 0);
    const text = asText(raw, format, paramTypes[i]);
    if (!masker) {
      out.push({ value: text.toString('utf8') });
      continue;
    }
    const masked = masker(text);
    out.push({ value: masked === null ? null : masked.toString('utf8'), masked: true });
  }
  return out;
}
