import { describe, expect, it } from 'vitest';
import { forEachMatch, jsonPathProblem, parseJsonPath } from './json-path.js';
import { checkRequestTarget, compilePathPattern, describeRequest } from './routes.js';

function selected(doc: unknown, path: string): unknown[] {
  const out: unknown[] = [];
  forEachMatch(doc, parseJsonPath(path), (parent, key) => out.push((parent as Record<string | number, unknown>)[key]));
  return out;
}

const doc = {
  patients: [
    { ssn: '1', contact: { ssn: 'nested', email: 'a@x' } },
    { ssn: '2', tags: ['t1', 't2'] },
  ],
  a: { b: { c: 3 } },
  'odd key': 'v',
  ssn: 'top',
};

describe('JSONPath subset', () => {
  it('selects members, array elements, indexes and recursive members', () => {
    expect(selected(doc, '$.a.b.c')).toEqual([3]);
    expect(selected(doc, '$.patients[*].ssn')).toEqual(['1', '2']);
    expect(selected(doc, '$.patients[1].tags[0]')).toEqual(['t1']);
    expect(selected(doc, "$['odd key']")).toEqual(['v']);
    expect(selected(doc, '$..ssn').sort()).toEqual(['1', '2', 'nested', 'top']);
    expect(selected(doc, '$.patients.*.ssn')).toEqual(['1', '2']);
    expect(selected(doc, '$.missing.x')).toEqual([]);
    expect(selected(doc, '$.patients[9].ssn')).toEqual([]);
  });

  it('lets the visitor replace what it selects', () => {
    const copy = structuredClone(doc);
    forEachMatch(copy, parseJsonPath('$..ssn'), (parent, key) => ((parent as Record<string | number, unknown>)[key] = 'X'));
    expect(JSON.stringify(copy)).not.toMatch(/"ssn":"(1|2|nested|top)"/);
  });

  it('rejects what it does not support, with the reason', () => {
    expect(jsonPathProblem('$.a[?(@.x)]')).toMatch(/unsupported syntax/);
    expect(jsonPathProblem('a.b')).toMatch(/must start with \$/);
    expect(jsonPathProblem('$')).toMatch(/whole document/);
    expect(jsonPathProblem('$..')).toMatch(/member name/);
    expect(jsonPathProblem('$.a[0:2]')).toMatch(/unsupported/);
    expect(jsonPathProblem('$.patients[*].ssn')).toBeUndefined();
  });
});

describe('HTTP route paths', () => {
  it('matches "*" within one segment and a trailing "**" across segments', () => {
    const star = compilePathPattern('/api/patients/*');
    expect(star('/api/patients/7')).toBe(true);
    expect(star('/api/patients/7/notes')).toBe(false);
    expect(star('/api/patients')).toBe(false);
    const rest = compilePathPattern('/api/admin/**');
    expect(rest('/api/admin')).toBe(true);
    expect(rest('/api/admin/users/1')).toBe(true);
    expect(rest('/api/administrator')).toBe(false);
    expect(compilePathPattern('/a.b')('/aXb')).toBe(false);
  });

  it('refuses ambiguous request targets and describes requests without query values', () => {
    for (const bad of ['/a/../b', '/a/./b', '//a', '/a//b', '/a%2Fb', '/a%2e%2e/b', '/a\\b', 'http://x/a']) expect(() => checkRequestTarget(bad), bad).toThrow();
    expect(checkRequestTarget('/a/b/?x=1')).toEqual({ path: '/a/b/', query: 'x=1' });
    expect(describeRequest('GET', '/p', 'ssn=123-45-6789&limit=5')).toBe('GET /p?ssn=?&limit=?');
  });
});
