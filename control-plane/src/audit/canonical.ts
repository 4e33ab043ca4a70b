/**
 * Canonical JSON for hashing and signing: object keys sorted, no
 * whitespace, so the same record always hashes the same however it was
 * built. (Numbers and strings use JSON.stringify's own forms.) Every audit
 * record passes through here on the append path, so it builds one string
 * without intermediate arrays.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined) return 'null';
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + canonicalJson(value[i]);
    return out + ']';
  }
  const obj = value as Record<string, unknown>;
  // Default sort compares UTF-16 code units, exactly as the previous `a < b` comparator did.
  const keys = Object.keys(obj).sort();
  let out = '{';
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    out += (first ? '' : ',') + JSON.stringify(k) + ':' + canonicalJson(v);
    first = false;
  }
  return out + '}';
}
