import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { KINDS, schemas, SECRET_REF_PATTERN } from './index.js';

/** Every property named like `passwordRef` anywhere in a schema. */
function refFields(node: unknown, at: string, out: Array<{ at: string; schema: Record<string, unknown> }>): void {
  if (Array.isArray(node)) node.forEach((n, i) => refFields(n, `${at}/${i}`, out));
  else if (node && typeof node === 'object') {
    const props = (node as { properties?: Record<string, Record<string, unknown>> }).properties;
    for (const [k, v] of Object.entries(props ?? {})) if (/Ref$/.test(k)) out.push({ at: `${at}/properties/${k}`, schema: v });
    for (const [k, v] of Object.entries(node)) refFields(v, `${at}/${k}`, out);
  }
}

describe('published schemas', () => {
  it('has one schema per kind, each a valid draft-07 document schema', () => {
    expect(Object.keys(schemas).sort()).toEqual([...KINDS].sort());
    const ajv = new Ajv({ strict: true, strictRequired: false, allowUnionTypes: true });
    for (const kind of KINDS) {
      const schema = schemas[kind];
      expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
      expect(schema.$id).toBe(`https://warden.dev/schemas/v1/${kind}.json`);
      expect(() => ajv.compile(schema)).not.toThrow();
    }
  });

  it('accepts secrets only as env:/file: references', () => {
    const refs: Array<{ at: string; schema: Record<string, unknown> }> = [];
    for (const kind of KINDS) refFields(schemas[kind], kind, refs);
    expect(refs.map((r) => r.at)).toEqual([
      'Target/properties/spec/properties/postgres/properties/passwordRef',
      'Target/properties/spec/properties/http/properties/authorizationRef',
      'Target/properties/spec/properties/ssh/properties/privateKeyRef',
      'MaskingStrategy/properties/spec/properties/hash/properties/keyRef',
    ]);
    for (const r of refs) expect(r.schema.pattern).toBe(SECRET_REF_PATTERN);
    const re = new RegExp(SECRET_REF_PATTERN);
    for (const ok of ['env:WARDEN_KEY', 'env:_x1', 'file:/run/secrets/key']) expect(re.test(ok)).toBe(true);
    for (const bad of ['hunter2', 'env:', 'env:1ABC', 'env:A-B', 'file:', 'vault:x']) expect(re.test(bad)).toBe(false);
  });
});
