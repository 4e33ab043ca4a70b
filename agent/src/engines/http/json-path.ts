/**
 * The JSONPath subset HTTP mask rules select response fields with:
 *
 *   $.a.b           members (also $['a b'] for names that are not identifiers)
 *   $.items[*].ssn  every element of an array (or every value of an object)
 *   $.items[0]      one element
 *   $..ssn          the member `ssn` at any depth
 *
 * Anything else (filters, slices, unions, scripts) is a parse error, so a
 * policy never silently selects less than its author meant.
 */

export type JsonPathStep =
  | { kind: 'member'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'wildcard' }
  | { kind: 'descend'; name: string };

export class JsonPathError extends Error {}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$-]*/;

export function parseJsonPath(source: string): JsonPathStep[] {
  if (!source.startsWith('$')) throw new JsonPathError('must start with $');
  const steps: JsonPathStep[] = [];
  let i = 1;
  while (i < source.length) {
    const rest = source.slice(i);
    if (rest.startsWith('..')) {
      const m = IDENT.exec(rest.slice(2));
      if (!m) throw new JsonPathError(`expected a member name after ".." at offset ${i + 2}`);
      steps.push({ kind: 'descend', name: m[0] });
      i += 2 + m[0].length;
    } else if (rest.startsWith('.*')) {
      steps.push({ kind: 'wildcard' });
      i += 2;
    } else if (rest.startsWith('.')) {
      const m = IDENT.exec(rest.slice(1));
      if (!m) throw new JsonPathError(`expected a member name after "." at offset ${i + 1}`);
      steps.push({ kind: 'member', name: m[0] });
      i += 1 + m[0].length;
    } else if (rest.startsWith('[*]')) {
      steps.push({ kind: 'wildcard' });
      i += 3;
    } else if (/^\[\d+\]/.test(rest)) {
      const m = /^\[(\d+)\]/.exec(rest)!;
      steps.push({ kind: 'index', index: Number(m[1]) });
      i += m[0].length;
    } else if (/^\['[^'\\]*'\]/.test(rest)) {
      const m = /^\['([^'\\]*)'\]/.exec(rest)!;
      steps.push({ kind: 'member', name: m[1]! });
      i += m[0].length;
    } else {
      throw new JsonPathError(`unsupported syntax at offset ${i} ("${rest.slice(0, 12)}"); use $.a.b, [*], [n], ['name'] or $..name`);
    }
  }
  if (steps.length === 0) throw new JsonPathError('selects the whole document; name a field');
  return steps;
}

/** Why a path is not in the supported subset, or undefined when it is (for config validation). */
export function jsonPathProblem(source: string): string | undefined {
  try {
    parseJsonPath(source);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

type Container = Record<string, unknown> | unknown[];

function isContainer(v: unknown): v is Container {
  return typeof v === 'object' && v !== null;
}

/**
 * Calls `visit(parent, key)` for every location the path selects in `doc`.
 * The visitor may replace parent[key]; the walk does not descend into what
 * it wrote.
 */
export function forEachMatch(doc: unknown, steps: readonly JsonPathStep[], visit: (parent: Container, key: string | number) => void): void {
  const walk = (node: unknown, at: number): void => {
    if (!isContainer(node)) return;
    const step = steps[at]!;
    const last = at === steps.length - 1;
    const select = (key: string | number): void => {
      if (last) visit(node, key);
      else walk((node as Record<string | number, unknown>)[key], at + 1);
    };
    switch (step.kind) {
      case 'member':
        if (!Array.isArray(node) && Object.hasOwn(node, step.name)) select(step.name);
        break;
      case 'index':
        if (Array.isArray(node) && step.index < node.length) select(step.index);
        break;
      case 'wildcard':
        for (const key of Array.isArray(node) ? node.keys() : Object.keys(node)) select(key);
        break;
      case 'descend': {
        // The member at this level, then the same step again in every child.
        if (!Array.isArray(node) && Object.hasOwn(node, step.name)) select(step.name);
        for (const [key, child] of Array.isArray(node) ? node.entries() : Object.entries(node)) {
          if (key === step.name && !Array.isArray(node)) continue;
          walk(child, at);
        }
        break;
      }
    }
  };
  walk(doc, 0);
}
