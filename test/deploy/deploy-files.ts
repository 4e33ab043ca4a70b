/**
 * Reads deploy/ the way the tools that consume it would: the kustomization
 * (resources, namespace, configMapGenerator), Dockerfile instructions,
 * systemd unit sections, the compose file; and compiles the project as
 * tsconfig.build.json does, so entry points can be checked in real output.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, parse } from 'yaml';

const run = promisify(execFile);
export const ROOT = path.resolve(import.meta.dirname, '../..');
export const DEPLOY = path.join(ROOT, 'deploy');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export function readYamlDocs(file: string): Obj[] {
  return parseAllDocuments(fs.readFileSync(file, 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0]!.message}`);
    return d.toJS() as Obj;
  });
}

export function readYaml(file: string): Obj {
  return parse(fs.readFileSync(file, 'utf8')) as Obj;
}

export interface Kustomized {
  kustomization: Obj;
  /** Every object of every resource, with the kustomization's namespace applied where none is set. */
  objects: Obj[];
  /** configMapGenerator name → file name → parsed YAML content. */
  generatedConfigMaps: Map<string, Map<string, Obj>>;
  /** Files the kustomization reads. */
  files: string[];
}

export function kustomize(dir: string): Kustomized {
  const kustomization = readYaml(path.join(dir, 'kustomization.yaml'));
  const files: string[] = [];
  const objects: Obj[] = [];
  for (const r of kustomization.resources as string[]) {
    const file = path.join(dir, r);
    files.push(file);
    for (const o of readYamlDocs(file)) {
      if (o.kind !== 'Namespace') o.metadata.namespace ??= kustomization.namespace;
      objects.push(o);
    }
  }
  const generatedConfigMaps = new Map<string, Map<string, Obj>>();
  for (const g of (kustomization.configMapGenerator ?? []) as Obj[]) {
    const content = new Map<string, Obj>();
    for (const f of g.files as string[]) {
      const file = path.join(dir, f);
      files.push(file);
      content.set(path.basename(f), readYaml(file));
    }
    generatedConfigMaps.set(g.name, content);
  }
  return { kustomization, objects, generatedConfigMaps, files };
}

export interface DockerInstruction {
  op: string;
  args: string;
  stage: number;
}

/** Instructions with continuation lines joined; `stage` counts FROMs (0 = before the first). */
export function readDockerfile(file: string): DockerInstruction[] {
  const joined = fs.readFileSync(file, 'utf8').replace(/\\\n/g, ' ');
  const out: DockerInstruction[] = [];
  let stage = 0;
  for (const raw of joined.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`${file}: cannot read "${line}"`);
    if (m[1] === 'FROM') stage++;
    out.push({ op: m[1]!, args: m[2]!.replace(/\s+/g, ' '), stage });
  }
  return out;
}

/** `KEY=value` assignments of a systemd unit, by section (repeated keys keep every value). */
export function readUnit(file: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of fs.readFileSync(file, 'utf8').replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      current = new Map();
      sections.set(s[1]!, current);
      continue;
    }
    const i = line.indexOf('=');
    if (!current || i < 0) throw new Error(`${file}: cannot read "${line}"`);
    const key = line.slice(0, i).trim();
    current.set(key, [...(current.get(key) ?? []), line.slice(i + 1).trim().replace(/\s+/g, ' ')]);
  }
  return sections;
}

/**
 * The images' runtime stage, rebuilt outside the repository (so nothing resolves from the
 * development node_modules): the package manifests, the dependencies installed by the exact
 * `npm ci` command of the Dockerfile's `deps` stage, and `dist/` compiled as `npm run build`
 * does. Returns the folder (the image's /app).
 */
export async function buildRuntime(dockerfile: string): Promise<string> {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-runtime-'));
  const deps = readDockerfile(dockerfile).filter((i) => i.stage === 2);
  for (const copy of deps.filter((i) => i.op === 'COPY')) {
    const parts = copy.args.split(' ');
    const dest = path.join(app, parts.at(-1)!);
    for (const src of parts.slice(0, -1)) {
      fs.mkdirSync(dest.endsWith('/') ? dest : path.dirname(dest), { recursive: true });
      fs.copyFileSync(path.join(ROOT, src), dest.endsWith('/') ? path.join(dest, path.basename(src)) : dest);
    }
  }
  const install = deps.find((i) => i.op === 'RUN' && i.args.startsWith('npm ci'))!.args.split(' && ')[0]!.split(' ');
  await run('npm', [...install.slice(1), '--prefer-offline'], { cwd: app, timeout: 300_000 });
  await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(app, 'dist')], { cwd: ROOT, timeout: 300_000 });
  return app;
}

/** Every `env:NAME` and `file:PATH` reference and every `*File` path in a parsed document. */
export function secretReferences(doc: unknown, found = { env: new Set<string>(), files: new Set<string>() }): { env: Set<string>; files: Set<string> } {
  const visit = (v: unknown, key?: string): void => {
    if (typeof v === 'string') {
      if (v.startsWith('env:')) found.env.add(v.slice(4));
      else if (v.startsWith('file:')) found.files.add(v.slice(5));
      else if (key && /File$/.test(key)) found.files.add(v);
    } else if (Array.isArray(v)) v.forEach((x) => visit(x));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) visit(x, k);
  };
  visit(doc);
  return found;
}

/** `--flag=value` or `--flag value` pairs of an argument list. */
export function flags(args: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    const [name, value] = eq > 0 ? [a.slice(2, eq), a.slice(eq + 1)] : [a.slice(2), args[i + 1]?.startsWith('--') ? '' : (args[++i] ?? '')];
    out.set(name, [...(out.get(name) ?? []), value]);
  }
  return out;
}
