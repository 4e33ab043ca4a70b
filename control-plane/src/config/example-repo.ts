/**
 * The example hospital repository (policy-examples/hipaa) as path → file
 * text (its YAML and its catalog/*.json snapshots for the policy tests),
 * read from disk so tests and documentation share one copy.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findExample(): string {
  // Works from the sources and from dist/ alike: walk up to the repository root.
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'policy-examples', 'hipaa');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('policy-examples/hipaa not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

function readTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (/\.ya?ml$/.test(e.name) || /^catalog\/[^/]+\.json$/.test(path.relative(root, full).split(path.sep).join('/'))) out[path.relative(root, full).split(path.sep).join('/')] = fs.readFileSync(full, 'utf8');
    }
  };
  walk(root);
  return out;
}

export const HOSPITAL_REPO: Readonly<Record<string, string>> = readTree(findExample());
