import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { validateRepository } from './validate.js';

const run = promisify(execFile);
const EXAMPLE = path.resolve('policy-examples/hipaa');

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', 'control-plane/src/cli/warden.ts', ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
}

function copyExample(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-repo-'));
  fs.cpSync(EXAMPLE, dir, { recursive: true });
  return dir;
}

describe('warden validate', () => {
  it('passes the example hospital repository with its policy tests', async () => {
    const r = await validateRepository(EXAMPLE);
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(r.tests.length).toBeGreaterThanOrEqual(8);
    expect(r.tests.every((t) => t.ok)).toBe(true);
    const cli = await warden(['validate', EXAMPLE]);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/valid: 0 errors, \d+ policy tests passed, 0 failed/);
  }, 30_000);

  it('fails a repository whose policy test no longer holds, annotating the line for PR checks', async () => {
    const dir = copyExample();
    // Loosen the analytics role: dob is no longer masked, so the test expecting it masked must fail.
    const role = path.join(dir, 'roles/clinical-analytics.yaml');
    fs.writeFileSync(role, fs.readFileSync(role, 'utf8').replace('{ column: dob, action: mask }', '{ column: dob, action: allow }'));
    const cli = await warden(['validate', dir, '--format', 'github']);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toMatch(/^::error file=tests\/analytics\.yaml,line=\d+,title=policy-test-failed::.*analytics sees hashed MRNs: expected dob masked/m);
    fs.rmSync(dir, { recursive: true });
  }, 30_000);

  it('reports a dangling reference and produces no bundle', async () => {
    const dir = copyExample();
    const listeners = path.join(dir, 'listeners.yaml');
    fs.writeFileSync(listeners, fs.readFileSync(listeners, 'utf8').replace('target: clinical\n', 'target: nowhere\n'));
    const r = await validateRepository(dir);
    expect(r.ok).toBe(false);
    expect(r.version).toBeUndefined();
    expect(r.diagnostics.some((d) => d.file === 'listeners.yaml' && /nowhere/.test(d.message))).toBe(true);
    fs.rmSync(dir, { recursive: true });
  });

  it('prints the JSON Schema of a kind, and refuses unknown commands with exit 2', async () => {
    const schema = await warden(['schema', 'Role']);
    expect(schema.code).toBe(0);
    expect(JSON.parse(schema.stdout).title).toBe('Warden Role');
    expect((await warden(['frobnicate'])).code).toBe(2);
    expect((await warden(['schema', 'Nope'])).code).toBe(2);
  }, 30_000);
});
