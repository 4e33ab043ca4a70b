/**
 * Secrets are referenced, never written, in config: `env:NAME` reads an
 * environment variable, `file:PATH` a file (trailing newline dropped, so
 * Kubernetes secret mounts work as they are).
 */
import fs from 'node:fs';
import path from 'node:path';

export class SecretError extends Error {}

export function isSecretRef(value: unknown): value is string {
  return typeof value === 'string' && /^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+)$/.test(value);
}

/** Resolves a reference; relative file paths are taken from `baseDir` (the config file's folder). */
export function resolveSecret(ref: string, baseDir = process.cwd()): string {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    const value = process.env[name];
    if (value === undefined) throw new SecretError(`secret ${ref}: environment variable ${name} is not set`);
    return value;
  }
  if (ref.startsWith('file:')) {
    const file = path.resolve(baseDir, ref.slice(5));
    try {
      return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new SecretError(`secret ${ref}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  // Never echo the value: it may be a secret pasted where a reference belongs.
  throw new SecretError('value is not a secret reference: use env:NAME or file:PATH');
}
