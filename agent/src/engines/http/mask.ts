/**
 * Mask for HTTP: JSON response fields selected by the route's mask rules
 * are rewritten with the same strategies (and keys) as SQL columns. The
 * body is buffered up to a cap; anything that cannot be masked for certain
 * (too large, not JSON, compressed, unparseable) is refused, never passed
 * through unmasked.
 */
import type { Readable } from 'node:stream';
import type { FieldMask } from './routes.js';
import { forEachMatch } from './json-path.js';

export class MaskRefusal extends Error {}

export interface MaskedBody {
  body: Buffer;
  /** "$.patients[*].ssn:redact" for each rule that replaced at least one value. */
  maskedFields: string[];
  maskedValues: number;
}

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\b/i;

/** Why a response on a masked route cannot be masked, or undefined when it can. */
export function unmaskableResponse(headers: Record<string, string | string[] | undefined>): string | undefined {
  const encoding = String(headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity') return `the upstream sent a ${encoding}-encoded body`;
  const type = String(headers['content-type'] ?? '');
  if (!JSON_TYPE.test(type)) return `the upstream sent ${type ? `"${type}"` : 'no content type'}, not JSON`;
  return undefined;
}

/**
 * Reads a whole body, refusing once it passes `max` bytes. On overflow the
 * stream is left to the caller: an upstream body is destroyed, a client's
 * request drained so the refusal can still be answered.
 */
export function readCapped(stream: Readable, max: number, what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) {
        cleanup();
        reject(new MaskRefusal(`${what} is larger than ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

function maskLeaf(value: unknown, mask: FieldMask): { value: unknown; count: number } {
  if (value === null) return { value, count: 0 };
  if (typeof value === 'object') {
    // A rule that selects an object or array masks everything inside it.
    let count = 0;
    const out: Record<string, unknown> | unknown[] = Array.isArray(value) ? [] : {};
    for (const [k, v] of Object.entries(value)) {
      const r = maskLeaf(v, mask);
      (out as Record<string, unknown>)[k] = r.value;
      count += r.count;
    }
    return { value: out, count };
  }
  const masked = mask.masker(Buffer.from(String(value), 'utf8'));
  return { value: masked === null ? null : masked.toString('utf8'), count: 1 };
}

export function maskJsonBody(raw: Buffer, masks: readonly FieldMask[]): MaskedBody {
  let doc: unknown;
  try {
    doc = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new MaskRefusal(`the upstream's JSON could not be parsed (${(err as Error).message})`);
  }
  const maskedFields: string[] = [];
  let maskedValues = 0;
  for (const mask of masks) {
    let hits = 0;
    forEachMatch(doc, mask.steps, (parent, key) => {
      const r = maskLeaf((parent as Record<string | number, unknown>)[key], mask);
      (parent as Record<string | number, unknown>)[key] = r.value;
      hits += r.count;
    });
    if (hits > 0) maskedFields.push(`${mask.path}:${mask.strategy}`);
    maskedValues += hits;
  }
  return { body: Buffer.from(JSON.stringify(doc), 'utf8'), maskedFields, maskedValues };
}
